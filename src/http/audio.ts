// OpenAI's audio endpoints, /v1/audio/transcriptions and /v1/audio/translations: a multipart
// upload (the audio file, the model, options) routed like any request by its model name, to a
// transcription role's backends (vLLM serving Whisper, an OpenAI-compatible speech server,
// OpenAI). The form is read in place (src/http/multipart.ts): the parts are views of the body,
// and src/engines/audio.ts sends them on as they came, the few it rewrites aside.

import { FabricError } from '../core/errors.ts';
import type { AudioOperation } from '../engines/types.ts';
import { AUDIO_FORMATS, REWRITTEN_FIELDS, type AudioFormat, type AudioRequest } from '../engines/audio.ts';
import { boundaryOf, readParts, type Part } from './multipart.ts';
import { bad, isForbiddenName } from './validate.ts';

const MAX_MODEL_NAME = 512;

/** Reads and checks the upload: a 415 for another body, a 400 naming the field for a bad one. */
export function parseAudioRequest(op: AudioOperation, body: Buffer, contentType: string | undefined): AudioRequest {
  const boundary = contentType === undefined || !/^multipart\/form-data\s*;/i.test(contentType) ? undefined : boundaryOf(contentType);
  if (boundary === undefined) {
    throw new FabricError('unsupported_media_type', `POST /v1/audio/${op} takes multipart/form-data with its boundary (a file part and a model field, as OpenAI's API does)${contentType === undefined ? '' : `, not ${JSON.stringify(contentType.slice(0, 80))}`}`);
  }
  const parts = readParts(body, boundary);
  const byName = new Map<string, Part[]>();
  for (const p of parts) {
    // OpenAI's SDKs send an object's fields as name[sub]: its own name decides.
    const base = p.name.replace(/\[.*$/, '');
    if (isForbiddenName(base)) throw new FabricError('forbidden_parameter', `\`${p.name}\` is not accepted: the gateway chooses backends and credentials, requests choose only the model`, { param: p.name });
    const list = byName.get(p.name);
    if (list === undefined) byName.set(p.name, [p]);
    else list.push(p);
  }
  /** A text field given at most once. */
  const text = (name: string): string | undefined => {
    const list = byName.get(name);
    if (list === undefined) return undefined;
    if (list.length > 1) throw bad(name, `\`${name}\` is given more than once`);
    if (list[0]!.filename !== undefined) throw bad(name, `\`${name}\` must be a text field, not a file`);
    return list[0]!.body.toString('utf8');
  };
  const model = text('model');
  if (model === undefined || model.trim() === '') throw bad('model', '`model` is required: a transcription role, its alias, or a model the gateway serves');
  if (model.length > MAX_MODEL_NAME) throw bad('model', `\`model\` is longer than ${MAX_MODEL_NAME} characters`);
  const files = byName.get('file');
  if (files === undefined) throw bad('file', '`file` is required: the audio, as a file part');
  // An engine takes one of several (Starlette the last): the one checked is the one sent.
  if (files.length > 1) throw bad('file', '`file` is given more than once: send one audio file');
  const file = files[0]!;
  if (file.filename === undefined) throw bad('file', '`file` must be a file part (with a filename), not a text field');
  if (file.body.length === 0) throw bad('file', '`file` is empty');
  const fmt = text('response_format') ?? 'json';
  if (!(AUDIO_FORMATS as readonly string[]).includes(fmt)) {
    throw bad('response_format', `\`response_format\` must be one of ${AUDIO_FORMATS.join(', ')}, got ${JSON.stringify(fmt.slice(0, 40))}`);
  }
  const s = text('stream');
  const stream = s !== undefined && /^(true|1)$/i.test(s.trim());
  if (s !== undefined && !stream && !/^(false|0)$/i.test(s.trim())) throw bad('stream', `\`stream\` must be true or false, got ${JSON.stringify(s.slice(0, 40))}`);
  if (stream && fmt !== 'json' && fmt !== 'text') throw bad('response_format', `a stream carries text as it is made: \`response_format\` json or text, not ${fmt}`);
  text('stream_include_usage'); // checked as a field, once; the gateway writes its own for vLLM
  return {
    op, model, format: fmt as AudioFormat, stream, boundary, fileBytes: file.body.length,
    parts: parts.filter((p) => !REWRITTEN_FIELDS.has(p.name)),
  };
}
