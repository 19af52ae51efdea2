// One simulated engine: an HTTP server that speaks a protocol, with the behaviour of a
// GPU server around it: limited concurrent generation with a FIFO queue behind it,
// time to first token and a token rate, client disconnects that free the slot, and
// injected faults.

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SimListenError } from './errors.ts';
import { FaultState } from './faults.ts';
import { GARBAGE_JSON, isSimError } from './protocol.ts';
import type { EngineLoad, EngineView, InferenceRoute, Plan, ProtocolImpl, Reply, ServedModel, SimError } from './protocol.ts';
import { PROTOCOLS } from './protocols/index.ts';
import { DEFAULT_TIMING } from './types.ts';
import type {
  SimEngine, SimEngineSpec, SimEngineStats, SimFault, SimFaultState, SimModelKind, SimProtocol, SimRequestRecord, SimTiming,
} from './types.ts';

const RECORD_LIMIT = 100;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Above this rate a per-token delay is below timer resolution: emit tokens back to back. */
const INSTANT_TOKENS_PER_SECOND = 1e6;
/** How long an idle connection stays open (0: until the client closes it) and how many requests it may carry (0: any). */
const KEEP_ALIVE: Record<SimProtocol, { idleMs: number; maxRequests: number }> = {
  vllm: { idleMs: 5_000, maxRequests: 0 },
  llamacpp: { idleMs: 5_000, maxRequests: 100 },
  ollama: { idleMs: 0, maxRequests: 0 },
  openai: { idleMs: 65_000, maxRequests: 0 },
};
const HEADERS_TIMEOUT_MS = 66_000;

const QUEUED = 0;
const RUNNING = 1;
const DONE = 2;
type JobState = typeof QUEUED | typeof RUNNING | typeof DONE;

interface Job {
  route: InferenceRoute;
  plan: Plan;
  res: ServerResponse;
  state: JobState;
  timer: NodeJS.Timeout | null;
  /** next generation step to emit */
  step: number;
  ttftMs: number;
  perTokenMs: number;
  /** streaming: destroy the socket after this many steps; -1 = never */
  dropAfter: number;
  /** streaming: stop sending (connection left open) after this many steps; -1 = never */
  stallAfter: number;
  /** streaming: end with the engine's own failure report after this many steps; -1 = never */
  failAfter: number;
  kvTokens: number;
  /** performance.now() when the request was planned, and when its first token went out */
  arrivedAt: number;
  firstAt: number;
}

export interface EngineOptions {
  host?: string;
  log?: (line: string) => void;
}

function resolveTiming(t: Partial<SimTiming> | undefined, protocol: SimProtocol): SimTiming {
  return {
    ttftMs: Math.max(0, t?.ttftMs ?? DEFAULT_TIMING.ttftMs),
    tokensPerSecond: t?.tokensPerSecond !== undefined && t.tokensPerSecond > 0 ? t.tokensPerSecond : DEFAULT_TIMING.tokensPerSecond,
    maxConcurrency: Math.max(1, Math.floor(t?.maxConcurrency ?? DEFAULT_TIMING.maxConcurrency)),
    // vLLM's waiting queue and llama-server's deferred tasks have no cap: nothing is refused.
    maxQueue: protocol === 'vllm' || protocol === 'llamacpp' ? Infinity : Math.max(0, Math.floor(t?.maxQueue ?? DEFAULT_TIMING.maxQueue)),
  };
}

/** What a model is for when nothing says: a reranker or an embedding model when its name says so, else chat. */
function kindFromName(model: string): SimModelKind {
  return /rerank/i.test(model) ? 'rerank' : /embed/i.test(model) ? 'embeddings' : 'chat';
}

/** The spec's models, main one first; a bare extra name is a reranker or an embedding model when it says so. */
function servedModels(spec: SimEngineSpec): ServedModel[] {
  const dimensions = spec.dimensions ?? 768;
  const contextWindow = spec.contextWindow ?? 8192;
  const out: ServedModel[] = [{ name: spec.model, kind: spec.kind, dimensions, contextWindow }];
  for (const extra of spec.extraModels ?? []) {
    const m = typeof extra === 'string' ? { model: extra } : extra;
    if (out.some((o) => o.name === m.model)) continue;
    out.push({
      name: m.model,
      kind: m.kind ?? kindFromName(m.model),
      dimensions: m.dimensions ?? dimensions,
      contextWindow: m.contextWindow ?? contextWindow,
    });
  }
  return out;
}

/** The Authorization values that pass, or null when the engine takes no key. */
function authHeaders(apiKey: SimEngineSpec['apiKey']): ReadonlySet<string> | null {
  const keys = (typeof apiKey === 'string' ? [apiKey] : apiKey ?? []).filter((k) => k !== '');
  return keys.length === 0 ? null : new Set(keys.map((k) => `Bearer ${k}`));
}

function send(res: ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { ...r.headers, 'content-length': Buffer.byteLength(r.body) };
  res.writeHead(r.status, headers);
  res.end(r.body);
}

export function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export class SimEngineImpl implements SimEngine {
  readonly name: string;
  readonly protocol: SimProtocol;
  readonly model: string;
  readonly models: readonly string[];
  readonly host: string;
  #port: number;
  readonly #server: Server;
  readonly #impl: ProtocolImpl;
  readonly #view: EngineView;
  readonly #timing: SimTiming;
  readonly #perTokenMs: number;
  readonly #authHeaders: ReadonlySet<string> | null;
  readonly #load: EngineLoad = {
    requests: 0, active: 0, queued: 0, completed: 0, promptTokens: 0, completionTokens: 0,
    finishedStop: 0, finishedLength: 0, activeTokens: 0,
  };
  readonly #faults = new FaultState();
  readonly #sockets = new Set<Socket>();
  readonly #queue: Job[] = [];
  readonly #running = new Set<Job>();
  readonly #hung = new Set<ServerResponse>();
  readonly #records: SimRequestRecord[] = [];
  #recordNext = 0;
  #listening = false;
  #closed = false;
  readonly #log: (line: string) => void;

  constructor(spec: SimEngineSpec, opts: EngineOptions = {}) {
    this.name = spec.name;
    this.protocol = spec.protocol;
    this.model = spec.model;
    const served = servedModels(spec);
    this.models = served.map((m) => m.name);
    this.host = spec.host ?? opts.host ?? '127.0.0.1';
    this.#port = spec.port ?? 0;
    this.#timing = resolveTiming(spec.timing, spec.protocol);
    this.#perTokenMs = this.#timing.tokensPerSecond >= INSTANT_TOKENS_PER_SECOND ? 0 : 1000 / this.#timing.tokensPerSecond;
    this.#authHeaders = authHeaders(spec.apiKey);
    this.#log = opts.log ?? (() => {});
    this.#view = {
      name: spec.name,
      model: spec.model,
      kind: spec.kind,
      dimensions: served[0]!.dimensions,
      contextWindow: served[0]!.contextWindow,
      models: served,
      timing: this.#timing,
      autoToolChoice: spec.autoToolChoice === true,
      jinja: spec.jinja !== false,
      metrics: spec.metrics !== false,
      physicalBatch: spec.physicalBatch ?? 512,
      startedAt: Date.now(),
      load: this.#load,
    };
    const factory = PROTOCOLS[spec.protocol];
    if (factory === undefined) throw new Error(`unknown simulator protocol ${String(spec.protocol)}`);
    this.#impl = factory(this.#view);
    this.#server = createServer(this.#onRequest);
    // Each engine's own keep-alive, which a gateway's pool must race correctly: vLLM's uvicorn
    // closes a connection idle 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE); llama-server's cpp-httplib
    // after 5 s or its 100th request (Keep-Alive: timeout=5, max=100); Ollama's Go server never.
    const keep = KEEP_ALIVE[spec.protocol];
    this.#server.keepAliveTimeout = keep.idleMs;
    if (keep.maxRequests > 0) this.#server.maxRequestsPerSocket = keep.maxRequests;
    this.#server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://${hostForUrl(this.host)}:${this.#port}`;
  }

  /** the fault now on, for the control server's listing */
  get fault(): SimFaultState | null {
    const s = this.#faults.current;
    return s === null ? null : { ...s };
  }

  async start(): Promise<void> {
    try {
      await this.#listen();
    } catch (err) {
      throw new SimListenError(this.name, this.host, this.#port, err);
    }
    this.#log(`[sim] ${this.name}: ${this.protocol} ${this.models.join(', ')} listening on ${this.url}`);
  }

  stats(): SimEngineStats {
    const l = this.#load;
    return {
      requests: l.requests, active: l.active, queued: l.queued, completed: l.completed,
      promptTokens: l.promptTokens, completionTokens: l.completionTokens,
    };
  }

  requests(): SimRequestRecord[] {
    const n = this.#records.length;
    if (n < RECORD_LIMIT) return this.#records.slice();
    return [...this.#records.slice(this.#recordNext), ...this.#records.slice(0, this.#recordNext)];
  }

  async setFault(fault: SimFault | null, remaining?: number): Promise<void> {
    if (this.#closed) return;
    const before = this.#faults.peek();
    this.#faults.set(fault, remaining);
    const now = this.#faults.peek();
    this.#log(`[sim] ${this.name}: fault ${now === null ? 'cleared' : JSON.stringify(now)}${remaining !== undefined && now !== null ? ` for ${remaining} request(s)` : ''}`);
    if (before?.kind === 'hang' && now?.kind !== 'hang') this.#releaseHung();
    if (now?.kind === 'down') {
      if (this.#listening) await this.#goDown();
    } else if (!this.#listening) {
      await this.#listen();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#faults.set(null);
    for (const job of this.#queue) job.state = DONE;
    this.#queue.length = 0;
    this.#load.queued = 0;
    for (const job of [...this.#running]) this.#release(job);
    this.#hung.clear();
    if (this.#listening) await this.#goDown();
  }

  // ---- lifecycle -------------------------------------------------------------------

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        this.#server.off('error', onError);
        const addr = this.#server.address();
        if (addr !== null && typeof addr === 'object') this.#port = addr.port;
        this.#listening = true;
        resolve();
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen(this.#port, this.host);
    });
  }

  /** Stop accepting and cut every open connection, as a crashed or unplugged server would. */
  #goDown(): Promise<void> {
    this.#listening = false;
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
      this.#sockets.clear();
    });
  }

  #releaseHung(): void {
    for (const res of this.#hung) res.socket?.destroy();
    this.#hung.clear();
  }

  // ---- request dispatch ------------------------------------------------------------

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'OPTIONS') {
      this.#dispatch(req, res, method, undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const raw = Buffer.concat(chunks, size);
      const type = req.headers['content-type'];
      // An upload (the audio endpoints): read as a form, with the platform's multipart parser.
      if (type !== undefined && /^multipart\/form-data/i.test(type)) {
        void readForm(raw, type).then((form) => this.#dispatch(req, res, method, undefined, form));
        return;
      }
      this.#dispatch(req, res, method, raw.toString('utf8'));
    });
  };

  #dispatch(req: IncomingMessage, res: ServerResponse, method: string, raw: string | undefined, form?: SimForm | string): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    const route = this.#impl.resolve(method, path);

    let body: unknown = form;
    let badJson = false;
    if (raw !== undefined && raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
        badJson = true;
      }
    }
    if (route?.kind === 'inference') {
      this.#load.requests++;
      this.#record({ method, path, headers: req.headers, body });
    }

    const fault = this.#faults.peek();
    if (fault?.kind === 'hang') {
      // A wedged server hangs every path; only inference requests count against `remaining`.
      if (route?.kind === 'inference') this.#faults.take();
      this.#hang(res);
      return;
    }
    if (route === undefined) {
      send(res, this.#impl.notFound(method, path));
      return;
    }
    const keys = this.#authHeaders;
    if (keys !== null && this.#impl.needsKey(path) && !keys.has(req.headers.authorization ?? '')) {
      send(res, this.#impl.unauthorized(req.headers.authorization));
      return;
    }
    if (badJson) {
      send(res, this.#impl.badJson(path));
      return;
    }
    if (route.kind === 'info') {
      if (route.health === true && fault?.kind === 'error') send(res, this.#impl.healthError(fault.status ?? 500));
      else send(res, route.handle(body, query));
      return;
    }
    this.#infer(route, body, res);
  }

  #record(r: SimRequestRecord): void {
    if (this.#records.length < RECORD_LIMIT) this.#records.push(r);
    else this.#records[this.#recordNext] = r;
    this.#recordNext = (this.#recordNext + 1) % RECORD_LIMIT;
  }

  #hang(res: ServerResponse): void {
    this.#hung.add(res);
    res.once('close', () => this.#hung.delete(res));
  }

  #infer(route: InferenceRoute, body: unknown, res: ServerResponse): void {
    const plan = route.plan(body);
    const fault = this.#faults.take();
    let factor = 1;
    let dropAfter = -1;
    let stallAfter = -1;
    let failAfter = -1;
    if (fault !== null) {
      const streaming = route.stream !== null && (isSimError(plan) ? route.wantsStream(body) : plan.stream);
      switch (fault.kind) {
        case 'error':
          send(res, route.error({ kind: 'server-error', status: fault.status ?? 500 }));
          return;
        case 'rate-limit': {
          const retryAfterS = fault.retryAfterS ?? 1;
          const r = route.error({ kind: 'rate-limit', retryAfterS });
          send(res, { ...r, headers: { ...r.headers, 'retry-after': String(retryAfterS) } });
          return;
        }
        case 'context-length': {
          // Reported as just over the window, so the numbers in the message are plausible.
          const prompt = this.#contextFaultTokens(plan);
          send(res, route.error({ kind: 'context-length', promptTokens: prompt }));
          return;
        }
        case 'garbage':
          send(res, streaming && route.stream !== null
            ? { status: 200, headers: { 'content-type': route.stream.contentType }, body: route.stream.garbage }
            : { status: 200, headers: { 'content-type': 'application/json' }, body: GARBAGE_JSON });
          return;
        case 'hang':
          this.#hang(res);
          return;
        case 'drop':
          if (!streaming) {
            res.socket?.destroy();
            return;
          }
          dropAfter = fault.afterChunks ?? 2;
          break;
        case 'stall':
          if (!streaming) {
            this.#hang(res);
            return;
          }
          stallAfter = fault.afterChunks ?? 2;
          break;
        case 'stream-error':
          if (!streaming) {
            send(res, route.error({ kind: 'server-error', status: 500 }));
            return;
          }
          failAfter = fault.afterChunks ?? 2;
          break;
        case 'slow':
          factor = fault.factor ?? 10;
          break;
        case 'down':
          break;
      }
    }
    if (isSimError(plan)) {
      send(res, route.error(plan));
      return;
    }
    const ttftMs = this.#timing.ttftMs * factor;
    const perTokenMs = this.#perTokenMs * factor;
    const load = this.#load;
    if (ttftMs <= 0 && perTokenMs <= 0 && dropAfter < 0 && stallAfter < 0 && failAfter < 0 && load.active < this.#timing.maxConcurrency) {
      // No artificial delay: answer synchronously, with no job, timer or listener.
      this.#answerNow(route, plan, res);
      return;
    }
    const job: Job = {
      route, plan, res, state: QUEUED, timer: null, step: 0, ttftMs, perTokenMs, dropAfter, stallAfter, failAfter,
      kvTokens: plan.promptTokens + plan.completionTokens, arrivedAt: performance.now(), firstAt: 0,
    };
    if (load.active < this.#timing.maxConcurrency) {
      this.#start(job);
    } else if (load.queued < this.#timing.maxQueue) {
      load.queued++;
      this.#queue.push(job);
    } else {
      send(res, route.error({ kind: 'overloaded' }));
      return;
    }
    res.once('close', () => {
      if (job.state === QUEUED) {
        job.state = DONE;
        load.queued--;
      } else if (job.state === RUNNING) {
        this.#release(job);
      }
    });
  }

  #contextFaultTokens(plan: Plan | SimError): number {
    return this.#view.contextWindow + (isSimError(plan) ? 1 : Math.max(1, plan.promptTokens));
  }

  #answerNow(route: InferenceRoute, plan: Plan, res: ServerResponse): void {
    const shape = route.stream;
    if (plan.stream && shape !== null) {
      let body = shape.begin(plan);
      for (let i = 0; i < plan.steps; i++) body += shape.step(plan, i);
      body += shape.end(plan);
      send(res, { status: 200, headers: { 'content-type': shape.contentType, 'cache-control': 'no-cache' }, body });
    } else {
      send(res, route.reply(plan));
    }
    this.#account(plan);
    this.#impl.finished?.(0, 0);
  }

  // ---- generation ------------------------------------------------------------------

  #start(job: Job): void {
    job.state = RUNNING;
    this.#load.active++;
    this.#load.activeTokens += job.kvTokens;
    this.#running.add(job);
    if (job.plan.stream && job.route.stream !== null) {
      if (job.ttftMs > 0) job.timer = setTimeout(this.#streamStep, job.ttftMs, job);
      else this.#streamStep(job);
      return;
    }
    const delay = job.ttftMs + job.perTokenMs * job.plan.steps;
    if (delay > 0) job.timer = setTimeout(this.#finishWhole, delay, job);
    else this.#finishWhole(job);
  }

  readonly #finishWhole = (job: Job): void => {
    job.timer = null;
    if (job.state !== RUNNING) return;
    // The first token was made perTokenMs per step before the whole answer was.
    job.firstAt = Math.max(job.arrivedAt, performance.now() - job.perTokenMs * job.plan.steps);
    send(job.res, job.route.reply(job.plan));
    this.#complete(job);
  };

  readonly #streamStep = (job: Job): void => {
    job.timer = null;
    if (job.state !== RUNNING) return;
    const { plan, res } = job;
    const shape = job.route.stream!;
    let chunk = '';
    if (job.step === 0) {
      job.firstAt = performance.now();
      res.writeHead(200, { 'content-type': shape.contentType, 'cache-control': 'no-cache' });
      chunk = shape.begin(plan);
    }
    // Emit one step per tick, or all remaining steps at once when tokens are instant.
    do {
      if (job.step >= plan.steps) {
        res.end(chunk + shape.end(plan));
        this.#complete(job);
        return;
      }
      if (job.stallAfter >= 0 && job.step >= job.stallAfter) {
        // Stalled: what was generated goes out, then nothing more until the client gives up.
        if (chunk !== '') res.write(chunk);
        return;
      }
      if (job.dropAfter >= 0 && job.step >= job.dropAfter) {
        this.#drop(job, chunk);
        return;
      }
      if (job.failAfter >= 0 && job.step >= job.failAfter) {
        res.end(chunk + shape.failure(plan));
        this.#release(job);
        return;
      }
      chunk += shape.step(plan, job.step++);
    } while (job.perTokenMs <= 0);
    res.write(chunk);
    job.timer = setTimeout(this.#streamStep, job.perTokenMs, job);
  };

  /** Cut the connection mid-stream, after what was already written reaches the socket. */
  #drop(job: Job, chunk: string): void {
    const socket = job.res.socket;
    this.#release(job);
    if (socket === null) return;
    if (chunk === '') socket.destroy();
    else job.res.write(chunk, () => socket.destroy());
  }

  #complete(job: Job): void {
    this.#account(job.plan);
    this.#impl.finished?.((job.firstAt - job.arrivedAt) / 1000, (performance.now() - job.arrivedAt) / 1000);
    this.#release(job);
  }

  #account(plan: Plan): void {
    const l = this.#load;
    l.completed++;
    l.promptTokens += plan.promptTokens;
    l.completionTokens += plan.completionTokens;
    for (const c of plan.choices) {
      if (c.finish === 'stop') l.finishedStop++;
      else l.finishedLength++;
    }
  }

  /** Free the job's slot (it finished, failed or its client left) and start the next queued one. */
  #release(job: Job): void {
    if (job.state !== RUNNING) return;
    job.state = DONE;
    if (job.timer !== null) {
      clearTimeout(job.timer);
      job.timer = null;
    }
    this.#running.delete(job);
    const l = this.#load;
    l.active--;
    l.activeTokens -= job.kvTokens;
    if (this.#closed) return;
    while (l.active < this.#timing.maxConcurrency && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      if (next.state !== QUEUED) continue;
      l.queued--;
      this.#start(next);
    }
  }
}

/**
 * A multipart upload as protocols read it: its text fields (a repeated one as a list) and its
 * file parts (name, type, size, and a digest of the bytes, which the simulated text comes from);
 * a string when the body is no form the parser can read.
 */
export interface SimForm {
  fields: Record<string, string | string[]>;
  files: Record<string, { filename: string; type: string; size: number; digest: string }>;
}

async function readForm(raw: Buffer, type: string): Promise<SimForm | string> {
  let fd: FormData;
  try {
    fd = await new Response(raw, { headers: { 'content-type': type } }).formData();
  } catch (e) {
    return `There was an error parsing the body: ${(e as Error).message}`;
  }
  const form: SimForm = { fields: {}, files: {} };
  for (const [name, v] of fd) {
    if (typeof v === 'string') {
      const had = form.fields[name];
      form.fields[name] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
    } else {
      const bytes = Buffer.from(await v.arrayBuffer());
      form.files[name] = { filename: v.name, type: v.type, size: v.size, digest: createHash('sha256').update(bytes).digest('hex') };
    }
  }
  return form;
}
