// The dashboard's live link: socket.io namespace /admin with the token in the handshake. Tracks
// connected / refused / disconnected-since so the page can mark its data stale, and re-watches
// the open job after every reconnection (the snapshot catches the page up).

import { io, type Socket } from 'socket.io-client';
import { ADMIN_NAMESPACE, type AdminClientToServer, type AdminServerToClient, type JobDelta, type JobSnapshot, type JobsOverview } from '../../shared/protocol/admin.ts';

export type LinkState = { kind: 'connecting' } | { kind: 'live'; since: number } | { kind: 'stale'; since: number; lastDataAt: number | null } | { kind: 'refused' };

export interface LiveHandlers {
  state(s: LinkState): void;
  overview(o: JobsOverview): void;
  delta(d: JobDelta): void;
  /** A (re)watch answered: replace the job page's data with it. */
  snapshot(s: JobSnapshot): void;
  watchFailed(jobId: string, message: string): void;
}

export class LiveLink {
  private socket: Socket<AdminServerToClient, AdminClientToServer> | null = null;
  private watching: string | null = null;
  private lastDataAt: number | null = null;
  private everConnected = false;

  constructor(private readonly h: LiveHandlers) {}

  connect(token: string): void {
    this.close();
    this.h.state({ kind: 'connecting' });
    const s: Socket<AdminServerToClient, AdminClientToServer> = io(ADMIN_NAMESPACE, {
      transports: ['websocket'],
      auth: { token },
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    this.socket = s;
    s.on('connect', () => {
      this.everConnected = true;
      this.h.state({ kind: 'live', since: Date.now() });
      if (this.watching) this.sendWatch(this.watching);
    });
    s.on('connect_error', (err) => {
      if (err.message === 'UNAUTHORIZED') {
        s.close();
        this.h.state({ kind: 'refused' });
        return;
      }
      this.h.state({ kind: 'stale', since: Date.now(), lastDataAt: this.everConnected ? this.lastDataAt : null });
    });
    s.on('disconnect', () => this.h.state({ kind: 'stale', since: Date.now(), lastDataAt: this.lastDataAt }));
    s.on('jobs:overview', (o) => {
      this.lastDataAt = Date.now();
      this.h.overview(o);
    });
    s.on('job:delta', (d) => {
      this.lastDataAt = Date.now();
      if (d.jobId === this.watching) this.h.delta(d);
    });
  }

  watch(jobId: string | null): void {
    const prev = this.watching;
    this.watching = jobId;
    if (!this.socket?.connected) return;
    if (prev && prev !== jobId) void this.socket.timeout(5000).emitWithAck('job:unwatch', { jobId: prev }).catch(() => undefined);
    if (jobId) this.sendWatch(jobId);
  }

  private sendWatch(jobId: string): void {
    this.socket
      ?.timeout(10_000)
      .emitWithAck('job:watch', { jobId })
      .then((res) => {
        if (this.watching !== jobId) return;
        if (res.ok) {
          this.lastDataAt = Date.now();
          this.h.snapshot(res.snapshot);
        } else this.h.watchFailed(jobId, res.message);
      })
      .catch(() => undefined); // a timeout while reconnecting: the next 'connect' watches again
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
  }
}
