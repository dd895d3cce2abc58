/** `MemoryStorage` seen through the conformance suite's interface: the reference behaviour. */
import { MemoryStorage } from "../../src/raft/index.js";
import type { StorageUnderTest } from "./conformance.js";

export async function memorySubject(voters: readonly string[] | null): Promise<StorageUnderTest> {
  return wrap(voters ? MemoryStorage.bootstrap(voters) : new MemoryStorage());
}

function wrap(m: MemoryStorage): StorageUnderTest {
  return {
    storage: m,
    async save(u) {
      if (u.snapshot) m.applySnapshot(u.snapshot);
      if (u.entries) m.append(u.entries);
      if (u.hardState) m.setHardState(u.hardState);
    },
    async compact(index) {
      m.compact(index);
    },
    async createSnapshot(index, confState) {
      return m.createSnapshot(index, confState, new Uint8Array(0));
    },
    // Memory has nothing to reopen: the same object is the state "after a restart".
    async reopen() {
      return wrap(m);
    },
    async close() {},
  };
}
