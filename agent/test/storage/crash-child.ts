/**
 * Child process of the crash test: opens the store, then forever saves entries for several
 * groups at once (one group commit per round), printing `durable <group> <index>` as soon as a
 * save resolved, then applies them: odd groups committing each apply, even groups lazily through the
 * write-back buffer (a small one, flushed often, so a kill finds it both empty and full). The
 * parent kills it with SIGKILL at some point.
 */
import { NodeStore } from "../../src/storage/index.js";
import { applyCrashEntry, CRASH_GROUPS, crashBatchSize, crashEntry } from "./crash-workload.js";

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: crash-child <dir>");
  const store = await NodeStore.open({ path: dir, applyFlushRecords: 24, applyFlushMs: 3 });
  process.stdout.write(`ready ${store.nodeId}\n`);
  for (;;) {
    await Promise.all(
      CRASH_GROUPS.map(async (g) => {
        const storage = store.group(g);
        const from = storage.lastIndex() + 1;
        const entries = [];
        for (let i = 0; i < crashBatchSize(g, from); i++) entries.push(crashEntry(g, from + i));
        const last = from + entries.length - 1;
        await storage.save({
          hardState: { term: entries[entries.length - 1]!.term, vote: "", commit: last },
          entries,
          snapshot: null,
        });
        // Writes to a pipe are synchronous on Linux: once this returns, the parent can read it.
        process.stdout.write(`durable ${g} ${last}\n`);
        // Apply from the applied index, as the agent does: after a crash the log may hold saved
        // entries that were never applied.
        const applied = store.appliedIndex(g);
        const pending = storage.entries(applied + 1, last + 1, Infinity);
        if (g % 2 === 1) await store.applyEntries(g, pending, applyCrashEntry);
        else
          await store.applyGroups([{ group: g, entries: pending, apply: applyCrashEntry }], { lazy: true });
      }),
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`crash child failed: ${String(err)}\n`);
  process.exit(2);
});
