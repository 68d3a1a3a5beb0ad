// The volunteer's settings, remembered on this device (localStorage): usage cap, pause while the
// tab is hidden, pause while on battery. Reads tolerate missing or garbled values (defaults).

const CAPS = [0.25, 0.5, 0.75, 1] as const;

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled (privacy mode): defaults, nothing remembered
  }
}
function write(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* not remembered; the setting still applies to this visit */
  }
}

export const prefs = {
  /** Fraction of wall time spent computing: one of 0.25, 0.5, 0.75, 1 (default 1). */
  get cap(): number {
    const v = Number(read('flock.cap'));
    return (CAPS as readonly number[]).includes(v) ? v : 1;
  },
  set cap(v: number) {
    write('flock.cap', String(v));
  },
  get pauseHidden(): boolean {
    return read('flock.pauseHidden') !== 'false';
  },
  set pauseHidden(v: boolean) {
    write('flock.pauseHidden', String(v));
  },
  /** The coordinator-issued worker id and its credential (kept so credit and trust follow this device). */
  get identity(): { workerId: string; credential: string } | null {
    try {
      const v = JSON.parse(read('flock.identity') ?? 'null') as { workerId?: unknown; credential?: unknown } | null;
      return v && typeof v.workerId === 'string' && typeof v.credential === 'string' ? { workerId: v.workerId, credential: v.credential } : null;
    } catch {
      return null;
    }
  },
  set identity(v: { workerId: string; credential: string } | null) {
    write('flock.identity', JSON.stringify(v));
  },
  get pauseOnBattery(): boolean {
    return read('flock.pauseBattery') !== 'false';
  },
  set pauseOnBattery(v: boolean) {
    write('flock.pauseBattery', String(v));
  },
};
