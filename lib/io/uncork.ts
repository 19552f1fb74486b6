/**
 * Write batching shared by the relay's connections and the client endpoint: a socket corked on its first
 * write of an event-loop turn is uncorked in that turn's check phase (`setImmediate`), after every I/O
 * callback of the turn ran. Everything written to one socket meanwhile (responses to one peer, reports
 * triggered by another peer's 200s, frames of several sessions) leaves in one writev instead of a
 * syscall each, and one immediate serves all sockets.
 */

/** A corked writer. */
export interface Uncorkable {
  uncork(): void;
}

let pending: Uncorkable[] = [];
let spare: Uncorkable[] = [];
let scheduled = false;

/** Calls `target.uncork()` once this turn's I/O callbacks have run; call once per cork. */
export function uncorkAfterTurn(target: Uncorkable): void {
  pending.push(target);
  if (scheduled) return;
  scheduled = true;
  setImmediate(uncorkAll);
}

function uncorkAll(): void {
  scheduled = false;
  const list = pending;
  pending = spare;
  spare = list;
  // A write made while uncorking corks its socket again and lands in the other list. One target that
  // throws must not leave the others corked for good: every one is uncorked, then the first error goes on.
  let failure: unknown = null;
  for (let i = 0; i < list.length; i++) {
    try {
      list[i]!.uncork();
    } catch (err) {
      failure ??= err;
    }
  }
  list.length = 0;
  if (failure !== null) throw failure;
}
