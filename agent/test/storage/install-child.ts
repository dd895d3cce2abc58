/**
 * Child process of the install-crash test: installs a large snapshot into a group that already
 * has state, printing `chunk <n>` as each chunk is handed to the store (the ones before it are
 * committed to the staging area by then). The parent kills it half way.
 */
import { NodeStore } from "../../src/storage/index.js";
import { INSTALL_GROUP, installChunks, installMetadata } from "./install-workload.js";

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: install-child <dir>");
  const store = await NodeStore.open({ path: dir });
  await store.installSnapshot(
    INSTALL_GROUP,
    installMetadata(),
    installChunks((n) => process.stdout.write(`chunk ${n}\n`)),
  );
  process.stdout.write("done\n");
  await store.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`install child failed: ${String(err)}\n`);
  process.exit(2);
});
