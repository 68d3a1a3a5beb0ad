// The worker's view of the coordinator: one method per request, each resolving to the ack.
// SocketLink implements it over socket.io-client (browser tab, Web Worker or Node alike).

import type { Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.ts';
import type {
  GradientPush,
  HelloAck,
  HelloRequest,
  JobGetAck,
  JobGetRequest,
  JobUpdate,
  LeaseAck,
  LeaseRequest,
  PushAck,
  RefuseJob,
  ReleaseAck,
  SimpleAck,
} from '../protocol/messages.ts';

export interface CoordinatorLink {
  hello(req: HelloRequest): Promise<HelloAck>;
  getJob(req: JobGetRequest): Promise<JobGetAck>;
  requestLease(req: LeaseRequest): Promise<LeaseAck>;
  pushGradient(req: GradientPush): Promise<PushAck>;
  releaseLease(leaseId: string): Promise<ReleaseAck>;
  refuseJob(req: RefuseJob): Promise<SimpleAck>;
  /** Called after every (re)connection: the worker must say hello again. */
  onConnect(cb: () => void): void;
  onDisconnect(cb: (reason: string) => void): void;
  onJobUpdate(cb: (u: JobUpdate) => void): void;
  readonly connected: boolean;
  close(): void;
}

export type FlockSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export class SocketLink implements CoordinatorLink {
  constructor(
    private readonly socket: FlockSocket,
    private readonly timeoutMs = 30_000,
  ) {}
  get connected(): boolean {
    return this.socket.connected;
  }
  hello(req: HelloRequest): Promise<HelloAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('worker:hello', req);
  }
  getJob(req: JobGetRequest): Promise<JobGetAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('job:get', req);
  }
  requestLease(req: LeaseRequest): Promise<LeaseAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('lease:request', req);
  }
  pushGradient(req: GradientPush): Promise<PushAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('gradient:push', req);
  }
  releaseLease(leaseId: string): Promise<ReleaseAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('lease:release', { leaseId });
  }
  refuseJob(req: RefuseJob): Promise<SimpleAck> {
    return this.socket.timeout(this.timeoutMs).emitWithAck('job:refuse', req);
  }
  onConnect(cb: () => void): void {
    this.socket.on('connect', cb);
  }
  onDisconnect(cb: (reason: string) => void): void {
    this.socket.on('disconnect', (r) => cb(r));
  }
  onJobUpdate(cb: (u: JobUpdate) => void): void {
    this.socket.on('job:update', cb);
  }
  close(): void {
    this.socket.close();
  }
}
