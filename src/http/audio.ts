// OpenAI's audio endpoints, /v1/audio/transcriptions and /v1/audio/translations: a multipart
// upload (the audio file, the model, options) routed like any request by its model name, to a
// transcription role's backends (vLLM serving Whisper, an OpenAI-compatible speech server,
// OpenAI). The form is read with the platform's own multipart parser (undici's, in Node);
// src/engines/audio.ts writes it anew for each backend.

import { FabricError } from '../core/errors.ts';
import type { AudioOperation } from '../engines/types.ts';
import { AUDIO_FORMATS, type AudioFormat, type AudioRequest } from '../engines/audio.ts';
import { bad, isForbiddenName } from './validate.ts';

const MAX_MODEL_NAME = 512;

/** Reads and checks the upload: a 415 for another body, a 400 naming the field for a bad one. */
export async function parseAudioRequest(op: AudioOperation, body: Buffer, contentType: string | undefined): Promise<AudioRequest> {
  if (contentType === undefined || !/^multipart\/form-data\s*;/i.test(contentType)) {
    throw new FabricError('unsupported_media_type', `POST /v1/audio/${op} takes multipart/form-data (a file part and a model field, as OpenAI's API does)${contentType === undefined ? '' : `, not ${JSON.stringify(contentType.slice(0, 80))}`}`);
  }
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
  } catch (e) {
    throw new FabricError('invalid_request', `the multipart body cannot be read: ${(e as Error).message}`);
  }
  for (const name of form.keys()) {
    // OpenAI's SDKs send an object's fields as name[sub]: its own name decides.
    const base = name.replace(/\[.*$/, '');
    if (isForbiddenName(base)) throw new FabricError('forbidden_parameter', `\`${name}\` is not accepted: the gateway chooses backends and credentials, requests choose only the model`, { param: name });
  }
  const model = form.get('model');
  if (typeof model !== 'string' || model.trim() === '') throw bad('model', '`model` is required: a transcription role, its alias, or a model the gateway serves');
  if (model.length > MAX_MODEL_NAME) throw bad('model', `\`model\` is longer than ${MAX_MODEL_NAME} characters`);
  if (form.getAll('model').length > 1) throw bad('model', '`model` is given more than once');
  const file = form.get('file');
  if (file === null) throw bad('file', '`file` is required: the audio, as a file part');
  if (typeof file === 'string') throw bad('file', '`file` must be a file part (with a filename), not a text field');
  if (file.size === 0) throw bad('file', '`file` is empty');
  const fmt = form.get('response_format') ?? 'json';
  if (typeof fmt !== 'string' || !(AUDIO_FORMATS as readonly string[]).includes(fmt)) {
    throw bad('response_format', `\`response_format\` must be one of ${AUDIO_FORMATS.join(', ')}, got ${JSON.stringify(typeof fmt === 'string' ? fmt.slice(0, 40) : 'a file')}`);
  }
  const s = form.get('stream');
  if (s !== null && typeof s !== 'string') throw bad('stream', '`stream` must be true or false');
  const stream = s !== null && /^(true|1)$/i.test(s.trim());
  if (s !== null && !stream && !/^(false|0)$/i.test(s.trim())) throw bad('stream', `\`stream\` must be true or false, got ${JSON.stringify(s.slice(0, 40))}`);
  if (stream && fmt !== 'json' && fmt !== 'text') throw bad('response_format', `a stream carries text as it is made: \`response_format\` json or text, not ${fmt}`);
  return { model, format: fmt as AudioFormat, stream, form, fileBytes: file.size };
}

