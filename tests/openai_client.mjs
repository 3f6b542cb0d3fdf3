// openai_client.mjs — the official `openai` npm client against `nexus serve`
// (run by tests/golden_serve.sh, which installs the package beside a copy of
// this file and starts the server). Completes, chats and streams; greedy text
// must equal `nexus generate --temperature 0` (EXPECT_TEXT for PROMPT); errors
// arrive as the client's typed exceptions. Prints "ok"/"FAIL" lines and
// "N passed, N failed, N skipped".
import OpenAI from 'openai';

const { BASE_URL, API_KEY, MODEL, PROMPT, EXPECT_TEXT, EXPECT_PROMPT_TOKENS, N_TOKENS } = process.env;
const n = Number(N_TOKENS);
let passed = 0, failed = 0;
function check(name, cond, detail = '') {
  if (cond) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`); }
}

const client = new OpenAI({ apiKey: API_KEY, baseURL: BASE_URL, maxRetries: 0, timeout: 300000 });

try {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  check('models.list names the model', ids.length === 1 && ids[0] === MODEL, JSON.stringify(ids));

  const c = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: n, temperature: 0 });
  check('completions.create: greedy text equals nexus generate --temperature 0',
        c.choices[0].text === EXPECT_TEXT, `${JSON.stringify(c.choices[0].text)} vs ${JSON.stringify(EXPECT_TEXT)}`);
  check('completions.create: usage', c.usage.prompt_tokens === Number(EXPECT_PROMPT_TOKENS) &&
        c.usage.completion_tokens === n && c.usage.total_tokens === c.usage.prompt_tokens + n, JSON.stringify(c.usage));

  const cs = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: n, temperature: 0, stream: true });
  let text = '', finish = null, chunks = 0;
  for await (const ch of cs) { chunks++; text += ch.choices[0]?.text ?? ''; finish = ch.choices[0]?.finish_reason ?? finish; }
  check('completions.create stream: chunks join to the same text', text === EXPECT_TEXT && chunks > 1 && finish === 'length',
        `${chunks} chunks, ${finish}, ${JSON.stringify(text)}`);

  const messages = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say something about cities.' }];
  const chat = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
  const reply = chat.choices[0].message.content;
  check('chat.completions.create', chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant' &&
        typeof reply === 'string' && chat.usage.completion_tokens > 0, JSON.stringify(chat));

  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0, stream: true,
                                                        stream_options: { include_usage: true } });
  let streamed = '', role = null, usage = null;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    const d = ch.choices[0]?.delta;
    if (d?.role) role = d.role;
    streamed += d?.content ?? '';
  }
  check('chat.completions.create stream: same reply as unstreamed, role, usage',
        streamed === reply && role === 'assistant' && usage && usage.completion_tokens === chat.usage.completion_tokens,
        `${JSON.stringify(streamed)} vs ${JSON.stringify(reply)}, usage ${JSON.stringify(usage)}`);

  // the helper that accumulates a stream into a final completion
  const runner = client.chat.completions.stream({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
  const final = await runner.finalChatCompletion();
  check('chat.completions.stream().finalChatCompletion()', final.choices[0].message.content === reply,
        JSON.stringify(final.choices[0].message));

  try {
    await client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 });
    check('unknown model: NotFoundError', false, 'no error');
  } catch (e) {
    check('unknown model: NotFoundError with the code', e instanceof OpenAI.NotFoundError && e.status === 404 &&
          e.code === 'model_not_found', `${e.constructor.name} ${e.status} ${e.code}`);
  }
  try {
    await client.completions.create({ model: MODEL, prompt: 'word '.repeat(2000), max_tokens: 2 });
    check('context overflow: BadRequestError', false, 'no error');
  } catch (e) {
    check('context overflow: BadRequestError context_length_exceeded', e instanceof OpenAI.BadRequestError &&
          e.code === 'context_length_exceeded', `${e.constructor.name} ${e.status} ${e.code}`);
  }
  try {
    const bad = new OpenAI({ apiKey: 'wrong', baseURL: BASE_URL, maxRetries: 0 });
    await bad.models.list();
    check('wrong key: AuthenticationError', false, 'no error');
  } catch (e) {
    check('wrong key: AuthenticationError', e instanceof OpenAI.AuthenticationError && e.status === 401,
          `${e.constructor.name} ${e.status}`);
  }
} catch (e) {
  check('the client ran without an unexpected error', false, String(e && e.stack || e));
}
console.log(`${passed} passed, ${failed} failed, 0 skipped`);
process.exit(failed ? 1 : 0);
