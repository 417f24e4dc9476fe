/** `url` pointed at database `name`, optionally as another login (tests and benchmarks build theirs this way). */
export function withDatabase(url: string, name: string, login?: { user: string; password?: string }): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  if (login) {
    u.username = login.user;
    u.password = login.password ?? '';
  }
  return u.toString();
}
