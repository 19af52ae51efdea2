// The simulator's own failure: a server that cannot listen. It names which server and where,
// so `fabric sim` can say so in one line, as `fabric serve` does, instead of a stack trace.

export class SimListenError extends Error {
  /** the engine that could not listen; undefined for the control API */
  readonly engine: string | undefined;
  /** "engine NAME" or "the control API", for messages */
  readonly what: string;
  readonly host: string;
  readonly port: number;
  /** the system's reason: EADDRINUSE, EACCES, EADDRNOTAVAIL… */
  readonly code: string | undefined;

  constructor(engine: string | undefined, host: string, port: number, cause: unknown) {
    const what = engine === undefined ? 'the control API' : `engine ${engine}`;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`cannot listen on ${host}:${port} for ${what}: ${code ?? String(cause)}`, { cause });
    this.name = 'SimListenError';
    this.engine = engine;
    this.what = what;
    this.host = host;
    this.port = port;
    this.code = code;
  }
}
