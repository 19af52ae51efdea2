// What a chat message's content parts carry, by their type, as clients send them: OpenAI's
// image_url and input_audio, the Responses API's input_image (translated to image_url before
// it goes on), and the audio_url some engines (vLLM) take.

export function isImagePart(p: object): boolean {
  const t = (p as { type?: unknown }).type;
  return t === 'image_url' || t === 'input_image' || t === 'image';
}

export function isAudioPart(p: object): boolean {
  const t = (p as { type?: unknown }).type;
  return t === 'input_audio' || t === 'audio_url';
}
