// Renders conversations with the model families' own chat templates through an independent
// implementation (@lenml/tokenizers, a fork of transformers.js, with @huggingface/jinja) and writes,
// as JSON on stdout, for each template and conversation: the rendered text, the ids
// apply_chat_template gives, and the token range of each assistant turn derived the usual way (the
// conversation up to the turn with the generation prompt is a prefix; the conversation including
// the turn ends it). tests/test_data_chat_reference.cpp compares ShardTune's templates with this.
//
// usage: node chat_reference.mjs ASSETS_DIR CORPUS.json
//   CORPUS.json: {"chats": [[{role, content}, ...], ...], "alpaca": [[instruction, input, output], ...]}
//
// Template strings are those published in each model's tokenizer_config.json:
//   qwen2   Qwen/Qwen2-7B-Instruct
//   llama3  meta-llama/Meta-Llama-3-8B-Instruct
//   llama2  meta-llama/Llama-2-7b-chat-hf
// Alpaca has no chat_template: its reference is Stanford Alpaca's train.py (PROMPT_DICT, the
// target output + eos_token, the tokenized source masked), built below the same way.
import { createRequire } from "module";
import { readFileSync } from "fs";
import path from "path";

const [assetsArg, conversationsFile] = process.argv.slice(2);
const assets = path.resolve(assetsArg);
const require = createRequire(path.join(assets, "node", "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const TEMPLATES = {
  qwen2:
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    "{% set loop_messages = messages %}{% for message in loop_messages %}" +
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ " +
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}" +
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}" +
    "{% endif %}",
  llama2:
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}" +
    "{% set system_message = messages[0]['content'] %}{% else %}" +
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
    "{% for message in loop_messages %}" +
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}" +
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}" +
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
    "{% else %}{% set content = message['content'] %}{% endif %}" +
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}" +
    "{% endif %}{% endfor %}",
};

function load(name) {
  const dir = path.join(assets, name);
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
}

const startsWith = (a, b) => b.length <= a.length && b.every((v, i) => a[i] === v);
const common = (a, b) => {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) ++n;
  return n;
};

// The assistant turns' token ranges [begin, end): begin after the prompt that asks for the turn,
// end after the turn (ChatML's newline after <|im_end|> excluded: it follows the stop token).
// Where the prompt's last token merges with the turn's first text in the full encoding (ChatML's
// "assistant\n" before content that starts with a newline), the prompt is no prefix of the
// whole: the range then begins at the first token the two differ in (prefixOk says so).
function chatRanges(tok, template, messages, genPrompt, dropTrailingNewline) {
  const ranges = [];
  let prefixOk = true;
  const full = tok.apply_chat_template(messages, { chat_template: template, tokenize: true });
  for (let k = 0; k < messages.length; ++k) {
    if (messages[k].role !== "assistant") continue;
    const before = tok.apply_chat_template(messages.slice(0, k),
                                           { chat_template: template, tokenize: true,
                                             add_generation_prompt: genPrompt });
    const upto = tok.apply_chat_template(messages.slice(0, k + 1),
                                         { chat_template: template, tokenize: true });
    prefixOk = prefixOk && startsWith(full, before) && startsWith(full, upto);
    let end = upto.length;
    if (dropTrailingNewline && tok.decode([upto[end - 1]]) === "\n") end -= 1;
    ranges.push([common(before, full), end]);
  }
  return { ranges, prefixOk };
}

const corpus = JSON.parse(readFileSync(conversationsFile, "utf8"));
const conversations = corpus.chats;
const out = {};
const cases = [
  ["chatml", "qwen3", "qwen2", true, true],
  ["llama3", "llama3", "llama3", true, false],
  ["llama2", "llama2", "llama2", false, false],
];
for (const [ours, tokName, templateName, genPrompt, dropNewline] of cases) {
  const tok = load(tokName);
  const template = TEMPLATES[templateName];
  out[ours] = conversations.map((messages) => {
    const text = tok.apply_chat_template(messages, { chat_template: template, tokenize: false });
    const ids = tok.apply_chat_template(messages, { chat_template: template, tokenize: true });
    return { text, ids, ...chatRanges(tok, template, messages, genPrompt, dropNewline) };
  });
}

// Alpaca (Stanford train.py), single turn: instruction [+ input] -> output.
{
  const tok = load("llama2");
  const PROMPT_INPUT =
    "Below is an instruction that describes a task, paired with an input that provides further " +
    "context. Write a response that appropriately completes the request.\n\n" +
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";
  const PROMPT_NO_INPUT =
    "Below is an instruction that describes a task. Write a response that appropriately " +
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:";
  const bos = tok.model.tokens_to_ids.get(tok.getToken("bos_token"));
  const eos = tok.getToken("eos_token");
  out.alpaca = corpus.alpaca.map(([instruction, input, output]) => {
    const source = (input !== "" ? PROMPT_INPUT : PROMPT_NO_INPUT)
      .replace("{instruction}", instruction).replace("{input}", input);
    const target = output + eos;
    const ids = [bos, ...tok.encode(source + target, { add_special_tokens: false })];
    const sourceLen = 1 + tok.encode(source, { add_special_tokens: false }).length;
    return { text: tok.getToken("bos_token") + source + target, ids,
             ranges: [[sourceLen, ids.length]], prefixOk: true };
  });
}
process.stdout.write(JSON.stringify(out));
