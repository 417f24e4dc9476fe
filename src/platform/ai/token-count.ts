import o200kBase from 'js-tiktoken/ranks/o200k_base';
import { BoundedTokenizer } from './bounded-tokenizer.js';
import type { ChatMessage, ToolDefinition } from './llm-provider.js';

// o200k_base: the encoding of the current OpenAI chat models; for other vendors' models it is an estimate,
// used only when the provider reports no usage and for the budget's worst case (with a margin). Bounded: a
// run's input is up to 100,000 characters in all (CreateRunDto), counted on the request's thread.
let encoder: BoundedTokenizer | undefined;
const encoding = () => (encoder ??= new BoundedTokenizer(o200kBase));

export function countTextTokens(text: string): number {
  return text ? encoding().encode(text).length : 0;
}

/**
 * Tokens of a chat request's input: messages plus their per-message framing (~4 each) plus the tool schemas.
 * `memo`: counts of messages and tool definitions already counted, by object: a run counts its input before every
 * call, and its messages are only ever added to, so each (up to 100,000 characters) is tokenized once.
 */
export function countChatInputTokens(messages: ChatMessage[], tools: ToolDefinition[] = [], memo?: WeakMap<object, number>): number {
  const once = (o: object, count: () => number): number => {
    if (!memo) return count();
    let n = memo.get(o);
    if (n === undefined) memo.set(o, (n = count()));
    return n;
  };
  let n = 3;
  for (const m of messages) {
    n += 4 + once(m, () => {
      if (m.role === 'assistant') return countTextTokens(m.content ?? '') + (m.toolCalls ?? []).reduce((s, c) => s + countTextTokens(c.name) + countTextTokens(c.arguments) + 4, 0);
      return countTextTokens(m.content);
    });
  }
  for (const t of tools) n += once(t, () => countTextTokens(JSON.stringify(t)) + 4);
  return n;
}
