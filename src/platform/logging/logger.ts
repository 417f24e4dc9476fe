import type { LoggerService } from '@nestjs/common';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import type { AppConfig } from '../config/config.js';

/**
 * The process's one pino logger: JSON lines on stdout, pretty in a development terminal; `destination` instead of
 * stdout when given (a test that reads every line the application writes).
 */
export function createLogger(config: Pick<AppConfig, 'logLevel' | 'nodeEnv'>, mixin?: () => object, destination?: DestinationStream): Logger {
  if (destination) return pino({ level: config.logLevel, ...(mixin ? { mixin } : {}) }, destination);
  return pino({
    level: config.logLevel,
    // while tracing: the active span's trace id on every line (observability/tracing.ts); no mixin otherwise
    ...(mixin ? { mixin } : {}),
    transport: config.nodeEnv === 'development' && process.stdout.isTTY ? { target: 'pino-pretty' } : undefined,
  });
}

/**
 * Nest's Logger (framework messages and `new Logger(context)` in our services) written through pino.
 * Nest appends the context as the last argument; an object first argument is merged into the line,
 * as pino does: `logger.error({ requestId, err }, 'unhandled error')`.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]) {
    // Nest's boot chatter (a line per module and per mapped route) is for debugging, not for every start
    const context = params[params.length - 1];
    this.write(typeof context === 'string' && BOOT_CONTEXTS.has(context) ? 'debug' : 'info', message, params);
  }
  error(message: unknown, ...params: unknown[]) { this.write('error', message, params); }
  warn(message: unknown, ...params: unknown[]) { this.write('warn', message, params); }
  debug(message: unknown, ...params: unknown[]) { this.write('debug', message, params); }
  verbose(message: unknown, ...params: unknown[]) { this.write('trace', message, params); }
  fatal(message: unknown, ...params: unknown[]) { this.write('fatal', message, params); }

  setLogLevels(): void {
    // the level is LOG_LEVEL's, set once at boot
  }

  private write(level: Exclude<LevelWithSilent, 'silent'>, message: unknown, params: unknown[]): void {
    if (!this.logger.isLevelEnabled(level)) return;
    const rest = [...params];
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest.pop() as string) : undefined;
    if (message instanceof Error) {
      this.logger[level]({ context, err: message }, message.message);
    } else if (message !== null && typeof message === 'object') {
      this.logger[level]({ context, ...message }, typeof rest[0] === 'string' ? rest[0] : undefined);
    } else if (level === 'error' && typeof rest[0] === 'string') {
      this.logger.error({ context, stack: rest[0] }, String(message)); // Nest's error(message, stack, context)
    } else {
      this.logger[level]({ context }, String(message));
    }
  }
}

const BOOT_CONTEXTS = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']);

const ABORTED = Symbol('omnizen:aborted');
type Marked = FastifyRequest & { [ABORTED]?: boolean };

/** Query parameters whose values are credentials (a data export's download token, an OAuth code or state). */
const SECRET_PARAM = /^(?:.*[_-])?(?:token|secret|password|signature|sig|hmac|key|apikey|code|state)$/i;

/** The URL as logged: a credential in the query string (a bearer link) is replaced by [redacted]. */
export function loggedUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      // a malformed escape: judged as written
    }
    return eq >= 0 && SECRET_PARAM.test(decoded) ? `${name}=[redacted]` : pair;
  });
  return `${url.slice(0, q)}?${query.join('&')}`;
}

/**
 * One line per answered request: request id, method, URL, status and duration; a request the
 * client abandoned before its answer logs once, with `aborted`. 5xx answers log at error level,
 * everything else at info. Headers are not logged, and credentials in the query string are
 * redacted (loggedUrl), so tokens and cookies never reach the logs.
 * (Fastify's own logger would build a child logger per request; this writes one line.)
 */
export function logRequests(fastify: FastifyInstance, logger: Logger): void {
  fastify.addHook('onResponse', (req, reply, done) => {
    if (!(req as Marked)[ABORTED]) {
      const line = { reqId: req.id, method: req.method, url: loggedUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 };
      if (reply.statusCode >= 500) logger.error(line, 'request failed');
      else logger.info(line, 'request completed');
    }
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    (req as Marked)[ABORTED] = true;
    logger.info({ reqId: req.id, method: req.method, url: loggedUrl(req.url), aborted: true }, 'request aborted');
    done();
  });
}
