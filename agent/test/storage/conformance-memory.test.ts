import { storageConformance } from "./conformance.js";
import { memorySubject } from "./memory-subject.js";

storageConformance("MemoryStorage", memorySubject);
