/**
 * The per-subscriber queue: bounded for live values, backpressure with
 * headroom for replays, newest-only state, and a resume point that never
 * runs ahead of what the consumer finished with.
 */
import { describe, expect, it } from "vitest";
import { Channel } from "../../src/schema/live/channel.ts";

function channel(sizeMax: number) {
  const events = { closed: 0, overflows: 0 };
  const queue = new Channel<number>(
    sizeMax,
    () => {
      events.closed += 1;
    },
    () => {
      events.overflows += 1;
      return new Error("too slow");
    },
  );
  return { queue, events };
}

describe("Channel", () => {
  it("ends with the overflow error when a live value finds the queue full", async () => {
    const { queue, events } = channel(3);
    for (const value of [1, 2, 3]) queue.push(value);
    expect(events.overflows).toBe(0);
    queue.push(4);
    expect(events).toEqual({ closed: 1, overflows: 1 });
    expect(queue.closed).toBe(true);
    // What was queued is dropped: the subscriber resumes from what it had instead.
    await expect(queue.next()).rejects.toThrow("too slow");
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it("lets a replay fill only half the queue, so live values right after it find room", async () => {
    const { queue, events } = channel(4);
    let replayed = 0;
    const replay = (async () => {
      for (const value of [1, 2, 3, 4, 5]) {
        await queue.pushWhenRoom(value);
        replayed += 1;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(replayed).toBe(2);
    // Two live values fit beside the replay's half.
    queue.push(100);
    queue.push(101);
    expect(events.overflows).toBe(0);
    const taken: number[] = [];
    for (let index = 0; index < 7; index += 1) {
      const result = await queue.next();
      taken.push(result.value);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await replay;
    expect(taken.slice(0, 4)).toEqual([1, 2, 100, 101]);
    expect(taken.slice(4)).toEqual([3, 4, 5]);
  });

  it("keeps only the newest of a kind with pushLatest, so it never overflows on state", () => {
    const { queue, events } = channel(2);
    for (let value = 0; value < 100; value += 1) queue.pushLatest(value, () => true);
    expect(events.overflows).toBe(0);
    return expect(queue.next()).resolves.toEqual({ value: 99, done: false });
  });

  it("reports as consumed only values the consumer has moved past", async () => {
    const { queue } = channel(10);
    for (const value of [1, 2, 3]) queue.push(value);
    expect(queue.lastConsumed).toBeUndefined();
    await queue.next();
    // 1 is taken but may still be in flight: not consumed until the next request.
    expect(queue.lastConsumed).toBeUndefined();
    await queue.next();
    expect(queue.lastConsumed).toBe(1);
    const waiting = queue.next();
    expect(queue.lastConsumed).toBe(2);
    await waiting;
    const pending = queue.next();
    queue.push(4);
    expect(await pending).toEqual({ value: 4, done: false });
    expect(queue.lastConsumed).toBe(3);
  });

  it("serves nothing once returned: the queue is dropped and next() is done", async () => {
    const { queue, events } = channel(10);
    for (const value of [1, 2, 3]) queue.push(value);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    const replay = queue.pushWhenRoom(4);
    const drained = queue.drained();
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    expect(events.closed).toBe(1);
    expect(queue.size).toBe(0);
    expect(queue.signal.aborted).toBe(true);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    // Work waiting on the subscriber is released, and what it pushes afterwards is not kept.
    await replay;
    await drained;
    queue.push(5);
    queue.pushLatest(6, () => true);
    expect(queue.size).toBe(0);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it("ends a consumer waiting in next() with done when returned", async () => {
    const { queue } = channel(10);
    const pending = queue.next();
    await queue.return();
    expect(await pending).toEqual({ value: undefined, done: true });
  });

  it("reports drained once the consumer has taken everything and asks for more", async () => {
    const { queue } = channel(10);
    for (const value of [1, 2]) queue.push(value);
    let drained = false;
    void queue.drained().then(() => {
      drained = true;
    });
    await queue.next();
    await queue.next();
    await new Promise((resolve) => setTimeout(resolve, 5));
    // Value 2 is taken but may still be in flight.
    expect(drained).toBe(false);
    const waiting = queue.next();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(drained).toBe(true);
    queue.push(3);
    expect(await waiting).toEqual({ value: 3, done: false });
  });
});
