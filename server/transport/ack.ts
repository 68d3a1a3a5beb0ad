// Acknowledgement helper shared by the socket.io handlers (workers and admin).

/** Wraps an ack so a handler never answers twice and a missing callback never crashes. */
export function safeAck<T>(ack: unknown): (res: T) => void {
  let done = false;
  return (res) => {
    if (done || typeof ack !== 'function') return;
    done = true;
    (ack as (r: T) => void)(res);
  };
}
