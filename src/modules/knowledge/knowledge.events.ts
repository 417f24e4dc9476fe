import type { DomainEventType } from '../../platform/events/events.js';

const DOCUMENT = {
  type: 'object', required: ['documentId', 'collectionId', 'version'], additionalProperties: false,
  properties: {
    documentId: { type: 'string', format: 'uuid' },
    collectionId: { type: 'string', format: 'uuid' },
    version: { type: 'integer', minimum: 1 },
    chunkCount: { type: 'integer', minimum: 0 },
  },
};

/** The domain events the knowledge base emits. */
export const KNOWLEDGE_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'knowledge_document.indexed', version: 1, category: 'ai',
    description: 'A version of a document finished ingestion and is what search finds now',
    payloadSchema: DOCUMENT,
    example: { documentId: '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d', collectionId: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', version: 2, chunkCount: 12 },
  },
  {
    type: 'knowledge_document.deleted', version: 1, category: 'ai',
    description: 'A document and its chunks were deleted',
    payloadSchema: DOCUMENT,
    example: { documentId: '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d', collectionId: '7d1c2b9e-3f4a-4c5d-8e6f-0a1b2c3d4e5f', version: 2 },
  },
];
