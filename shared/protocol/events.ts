// Typed socket.io event maps shared by the coordinator and every worker.
// Every client->server event takes an acknowledgement callback (no reply events).

import type {
  GradientPush,
  HelloAck,
  HelloRequest,
  JobGetAck,
  JobGetRequest,
  JobUpdate,
  LeaseAck,
  LeaseRelease,
  LeaseRequest,
  PushAck,
  RefuseJob,
  ReleaseAck,
  SimpleAck,
} from './messages.ts';

export interface ClientToServerEvents {
  'worker:hello': (req: HelloRequest, ack: (res: HelloAck) => void) => void;
  'job:get': (req: JobGetRequest, ack: (res: JobGetAck) => void) => void;
  'lease:request': (req: LeaseRequest, ack: (res: LeaseAck) => void) => void;
  'gradient:push': (req: GradientPush, ack: (res: PushAck) => void) => void;
  'lease:release': (req: LeaseRelease, ack: (res: ReleaseAck) => void) => void;
  'job:refuse': (req: RefuseJob, ack: (res: SimpleAck) => void) => void;
}

export interface ServerToClientEvents {
  'job:update': (update: JobUpdate) => void;
}

