import { connect, createServer, type Socket } from 'node:net';

/**
 * A TCP proxy to the shared Redis that can freeze: from then on it reads what the app sends and never answers, on the
 * connections already open and on new ones (a paused redis-server, packets dropped on the way). The app's clients
 * stay "ready": nothing tells them Redis is gone.
 */
export class FreezingRedisProxy {
  frozen = false;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((client) => this.accept(client));
  port = 0;

  constructor(private readonly upstream: URL) {}

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private accept(client: Socket): void {
    this.track(client);
    if (this.frozen) {
      client.resume(); // reads, never writes
      return;
    }
    const upstream = connect(Number(this.upstream.port || 6379), this.upstream.hostname);
    this.track(upstream);
    client.on('data', (d) => void (this.frozen || upstream.write(d)));
    upstream.on('data', (d) => void (this.frozen || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Every connection dropped and no new one accepted: a Redis that is down. */
  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
