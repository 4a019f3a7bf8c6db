import type { ServedModel } from './served-model.js';

/**
 * The model the device serves. Swapping is one assignment: a request sees the old model or the
 * new one, never a mix, and requests in flight on the old one finish on it.
 */
export class ModelSlot {
  #current: ServedModel | undefined;

  get current(): ServedModel | undefined {
    return this.#current;
  }

  /** Serves `next` from now on; the model it replaces is retired. */
  swap(next: ServedModel | undefined): void {
    const previous = this.#current;
    this.#current = next;
    if (previous && previous !== next) void previous.retire();
  }
}
