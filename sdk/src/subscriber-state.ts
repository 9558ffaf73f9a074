// The subscriber's one lifecycle state and the moves it may make, checked: a move not in the table
// is a bug in the subscriber and throws, instead of leaving flags that contradict each other.
//
//   connecting --opened--> open --stream broke--> backoff --timer--> connecting
//   connecting | open | backoff --close()--> draining --drained--> closed
//   connecting | open --fatal error--> closed;  connecting --client shut down--> closed
//   draining --stream broke--> draining (handlers still finish; their settles have nowhere to go)

export type LifecycleName = "connecting" | "open" | "backoff" | "draining" | "closed";

const MOVES: Record<LifecycleName, readonly LifecycleName[]> = {
  connecting: ["open", "backoff", "draining", "closed"],
  open: ["backoff", "draining", "closed"],
  backoff: ["connecting", "draining", "closed"],
  draining: ["draining", "closed"],
  closed: [],
};

export class IllegalTransition extends Error {
  constructor(
    readonly from: LifecycleName,
    readonly to: LifecycleName,
  ) {
    super(`the subscriber cannot go from ${from} to ${to}`);
    this.name = "IllegalTransition";
  }
}

/** Throws unless `from` may move to `to`. */
export function checkTransition(from: LifecycleName, to: LifecycleName): void {
  if (!MOVES[from].includes(to)) throw new IllegalTransition(from, to);
}
