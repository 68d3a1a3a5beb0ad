// The admin session in the browser: the token (from the printed URL's #token=, or the sign-in
// form), kept in sessionStorage only (gone when the browser closes), and authorised API calls.

const KEY = 'flock.adminToken';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The job-file key at fault, for job-file refusals. */
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** Takes `#token=...` off the URL (so it is not left in history or screenshots) and keeps it. */
export function adoptTokenFromHash(): void {
  const params = new URLSearchParams(location.hash.replace(/^#\/?/, ''));
  const t = params.get('token');
  if (!t) return;
  sessionStorage.setItem(KEY, t);
  history.replaceState(null, '', location.pathname + location.search + '#/');
}

export function getToken(): string {
  return sessionStorage.getItem(KEY) ?? '';
}

export function setToken(t: string): void {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

/** An authorised API call; a FormData body goes as multipart (job-file uploads), anything else as JSON. */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const form = init.body instanceof FormData;
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: { Authorization: `Bearer ${getToken()}`, ...(init.body !== undefined && !form ? { 'Content-Type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: form ? (init.body as FormData) : JSON.stringify(init.body) } : {}),
  });
  if (!res.ok) {
    let code = String(res.status);
    let message = res.statusText;
    let field: string | null = null;
    try {
      const e = (await res.json()) as { error?: { code: string; message: string; field?: string | null } };
      if (e.error) ({ code, message } = e.error);
      field = e.error?.field ?? null;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message, field);
  }
  return (await res.json()) as T;
}

/** Fetches an admin file with the token and hands it to the browser as a download. */
export async function downloadWithToken(path: string, filename: string): Promise<void> {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${getToken()}` } });
  if (!res.ok) throw new ApiError(res.status, String(res.status), `download failed (${res.status})`);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
