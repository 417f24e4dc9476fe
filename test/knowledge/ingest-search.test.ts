import { describeKnowledge } from './knowledge-suite.js';

// the server's path: pgvector where the `vector` extension is available (CI builds it), else real[]
describeKnowledge('default');
