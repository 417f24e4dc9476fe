import { describeKnowledge } from './knowledge-suite.js';

// the real[] path (as on the embedded PostgreSQL), forced by a database setting whatever the server has
describeKnowledge('array');
