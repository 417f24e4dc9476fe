import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * TEST DOUBLE of an OpenAI-compatible embeddings endpoint (POST /v1/embeddings on 127.0.0.1), as the `openai`
 * SDK calls it. Embeddings are deterministic feature hashing: every character trigram of every lower-cased word
 * (with word-boundary marks) adds ±1 to one of `dimensions` buckets, then the vector is scaled to unit length. So
 * texts sharing words, or most of a word's letters (a typo, another inflection), are near each other — what tests
 * of "search by meaning" need, with no model. Not a model: only the protocol and that property.
 */
export interface EmbeddingsDouble {
  /** base URL for AI_BASE_URL (ends in /v1) */
  url: string;
  apiKey: string;
  /** requests received: model, number of inputs, dimensions asked for, the tokens its answer reported (usage.prompt_tokens: the inputs' characters) */
  requests: { model: string; inputs: number; dimensions?: number; tokens: number }[];
  /** when set, every request is answered with this HTTP status (an outage) */
  failWith?: number;
  /** when set, the answer's `data` (one embedding per input, in order) is replaced by what it returns: a provider answering wrongly */
  alterData?: (data: { object: 'embedding'; index: number; embedding: unknown }[]) => unknown[];
  close(): Promise<void>;
}

export function featureHashEmbedding(text: string, dimensions: number): number[] {
  const v = new Array<number>(dimensions).fill(0);
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    const w = `^${word}$`;
    for (let i = 0; i + 3 <= w.length; i++) {
      const h = createHash('md5').update(w.slice(i, i + 3)).digest();
      const bucket = h.readUInt32LE(0) % dimensions;
      v[bucket] += h[4] & 1 ? 1 : -1;
    }
  }
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? v : v.map((x) => x / norm);
}

/** `embed`: the double's embedding function (default: feature hashing); the benchmark passes a corpus model of its own. */
export async function startEmbeddingsDouble(apiKey = 'sk-embeddings-double', embed: (text: string, dimensions: number) => number[] = featureHashEmbedding): Promise<EmbeddingsDouble> {
  const double: Partial<EmbeddingsDouble> & { requests: EmbeddingsDouble['requests'] } = { apiKey, requests: [] };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') return send(404, { error: { message: 'not found', type: 'invalid_request_error' } });
      if (req.headers.authorization !== `Bearer ${apiKey}`) return send(401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } });
      if (double.failWith) return send(double.failWith, { error: { message: 'the double is told to fail', type: 'server_error' } });
      const p = JSON.parse(body) as { model: string; input: string | string[]; dimensions?: number };
      const inputs = Array.isArray(p.input) ? p.input : [p.input];
      const dims = p.dimensions ?? 256;
      const tokens = inputs.reduce((n, t) => n + t.length, 0);
      double.requests.push({ model: p.model, inputs: inputs.length, dimensions: p.dimensions, tokens });
      const data = inputs.map((text, index) => ({ object: 'embedding' as const, index, embedding: embed(text, dims) as unknown }));
      send(200, {
        object: 'list', model: p.model,
        data: double.alterData ? double.alterData(data) : data,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  double.url = `http://127.0.0.1:${port}/v1`;
  double.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return double as EmbeddingsDouble;
}
