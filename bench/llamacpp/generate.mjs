// Greedy answers from a GGUF through llama.cpp itself (node-llama-cpp's prebuilt CPU binary),
// for checking tuneline's GGUF exports outside transformers. `make llamacpp` installs it.
// stdin:  {"model": path, "prompts": [text, special tokens written out], "max_tokens": n}
// stdout: {"prompt_tokens": [[id]], "answers": [[id]]}: llama.cpp's tokenization of each
//         prompt, and its greedy answer, ending with the end-of-generation token when the
//         model produced one before max_tokens.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const request = JSON.parse(readFileSync(0, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: request.model});
const context = await model.createContext({contextSize: 2048, threads: request.threads ?? 2});
const out = {prompt_tokens: [], answers: []};
for (const prompt of request.prompts) {
    const sequence = context.getSequence();
    const tokens = model.tokenize(prompt, true);
    const answer = [];
    for await (const token of sequence.evaluate(tokens, {temperature: 0, yieldEogToken: true})) {
        answer.push(token);
        if (model.isEogToken(token) || answer.length >= request.max_tokens) break;
    }
    out.prompt_tokens.push(tokens);
    out.answers.push(answer);
    sequence.dispose();
}
process.stdout.write(JSON.stringify(out));
await context.dispose();
await model.dispose();
