import { storageConformance } from "./conformance.js";
import { lmdbSubject } from "./lmdb-subject.js";

storageConformance("LmdbGroupStorage", (voters) => lmdbSubject(voters));
// Every read straight from LMDB, and a cache so small that reads straddle its edge.
storageConformance("LmdbGroupStorage without tail cache", (voters) =>
  lmdbSubject(voters, { tailCacheEntries: 0 }),
);
storageConformance("LmdbGroupStorage with a 3-entry tail cache", (voters) =>
  lmdbSubject(voters, { tailCacheEntries: 3 }),
);
