// flockctl's view of a coordinator: HTTP calls with the admin token, each failure turned into one
// CliError sentence (unreachable, token refused, the coordinator's own error message).

export class CliError extends Error {
  override readonly name = 'CliError';
}

export interface Target {
  readonly url: string;
  readonly token: string | undefined;
}

interface ErrorBody {
  error?: { code?: string; message?: string; field?: string | null };
}

export class ApiClient {
  constructor(readonly target: Target) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.target.token ? { Authorization: `Bearer ${this.target.token}` } : {}), ...extra };
  }

  /** fetch with one-sentence failures; `init.body` may be a stream (duplex half). */
  async request(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string>; admin?: boolean } = {}): Promise<Response> {
    const url = new URL(path, this.target.url.endsWith('/') ? this.target.url : this.target.url + '/');
    if (init.admin && !this.target.token) throw new CliError('this command needs the admin token: set FLOCK_ADMIN_TOKEN or pass --token (the coordinator prints it at start).');
    let res: Response;
    try {
      res = await fetch(url, { method, headers: this.headers(init.headers), ...(init.body !== undefined ? { body: init.body, duplex: 'half' } : {}) } as RequestInit);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new CliError(`cannot reach the coordinator at ${this.target.url}${cause ? ` (${cause})` : ''}: is it running? Set FLOCK_URL or pass --url.`);
    }
    if (res.ok) return res;
    let body: ErrorBody = {};
    try {
      body = (await res.json()) as ErrorBody;
    } catch {
      /* not JSON */
    }
    if (res.status === 401) throw new CliError(`the coordinator at ${this.target.url} refused the admin token: check FLOCK_ADMIN_TOKEN or --token.`);
    const msg = body.error?.message ?? `HTTP ${res.status}`;
    throw new CliError(body.error?.field ? `${msg.replace(/\.$/, '')} (job file key "${body.error.field}").` : msg);
  }

  async json<T>(method: string, path: string, admin = false, body?: unknown): Promise<T> {
    const res = await this.request(method, path, {
      admin,
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
    });
    return (await res.json()) as T;
  }
}
