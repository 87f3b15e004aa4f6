// The native thin client of a resident host (`tidemark host`, electron/cli/host-server.ts): what
// bin/tidemark runs when it has been built (scripts/build-native-client.mjs, out/cli/tidemark-client).
// It does what electron/cli/host-client.ts does, without Node's own start (~22-30 ms, most of a warm
// host command's time; bench/README.md "Phase 21"), as virsh is a small C client of libvirtd.
//
//   tidemark-client LAUNCHER [tidemark's arguments…]
//
// LAUNCHER is bin/tidemark.js. Whenever the command is not to run in a host (no host serves the state
// folder, nothing answers on its socket, the host says "run it in the caller", or the command line is
// one this client does not read), it execs LAUNCHER with the same arguments, which then decides as
// always. Once the request is sent, the command is never run a second time here: a lost connection is
// an error, as in host-client.ts.
//
// Hand-written: it speaks protocol 1 of electron/cli/host-protocol.ts, one JSON object per line. It only
// encodes strings (the request) and reads the host's five fixed frames as JSON.stringify writes them
// ({"out":"…"} {"err":"…"} {"exit":N} {"local":true} {"error":"…"}); anything else is a malformed
// reply. No library is needed for that, and the client must start in about a millisecond.
// scripts/native-client.test.ts checks that its request is the one host-client.ts sends for the same
// command line, and its output and exit status the ones host-client.ts gives for the same replies.

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HOST_PROTOCOL 1
// host-protocol.ts's MAX_FRAME_BYTES counts UTF-16 units; a UTF-8 line of up to 3 bytes per unit.
#define MAX_LINE_BYTES (3 * 1024 * 1024 + 64)
#define GIVE_UP_AFTER_INTERRUPTS 3

// host-protocol.ts's FORWARDED_ENV, in its order.
static const char *const forwarded_env[] = {"TIDEMARK_STATE_DIR", "TIDEMARK_DEBUG", "XDG_DATA_HOME", "HOME"};

static char **launcher_argv; // LAUNCHER, then tidemark's arguments
static const char *socket_path;
static volatile sig_atomic_t interrupts_pending;

/** Runs the command through bin/tidemark.js (its shebang starts Node). */
static void run_launcher(void) {
  execv(launcher_argv[0], launcher_argv);
  fprintf(stderr, "error: cannot run %s: %s\n", launcher_argv[0], strerror(errno));
  exit(127);
}

static void fail(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  fputs("error: ", stderr);
  vfprintf(stderr, format, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void *grow(void *p, size_t n) {
  p = realloc(p, n);
  if (p == NULL) fail("out of memory");
  return p;
}

// ---------------------------------------------------------------- the state folder and its socket

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int blank(const char *s) {
  for (; *s; s++)
    if (!is_space(*s)) return 0;
  return 1;
}

/** Node's path.resolve(cwd, p) for an absolute cwd: joined, then ".", ".." and repeated slashes folded. */
static char *resolve(const char *cwd, const char *p) {
  size_t n = strlen(cwd) + strlen(p) + 3;
  char *joined = grow(NULL, n), *out = grow(NULL, n);
  snprintf(joined, n, "%s/%s", p[0] == '/' ? "" : cwd, p);
  size_t len = 0;
  for (char *seg = strtok(joined, "/"); seg; seg = strtok(NULL, "/")) {
    if (strcmp(seg, ".") == 0) continue;
    if (strcmp(seg, "..") == 0) {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--; // the slash before the dropped name
      continue;
    }
    out[len++] = '/';
    memcpy(out + len, seg, strlen(seg));
    len += strlen(seg);
  }
  if (len == 0) out[len++] = '/';
  out[len] = '\0';
  free(joined);
  return out;
}

/**
 * The state folder of electron/engine/statedir.ts's resolveStateDir, for the global options of
 * electron/cli/global-options.ts; NULL when they do not parse (the launcher reports that).
 */
static char *state_dir(int argc, char **argv, const char *cwd) {
  const char *explicit = NULL;
  for (int i = 0; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i], *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    size_t flag = eq ? (size_t)(eq - a) : strlen(a);
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
#define IS(name) (flag == strlen(name) && strncmp(a, name, flag) == 0)
    if (IS("-c") || IS("--connect") || IS("--domain") || IS("--state-dir")) {
      if (value == NULL) return NULL;
      if (IS("--state-dir")) explicit = value;
      if (!eq) i++;
    } else if (!IS("-h") && !IS("--help")) {
      return NULL;
    }
#undef IS
  }
  if (explicit && !blank(explicit)) return resolve(cwd, explicit);
  const char *env = getenv("TIDEMARK_STATE_DIR");
  if (env && !blank(env)) return resolve(cwd, env);
  const char *xdg = getenv("XDG_DATA_HOME");
  const char *base = xdg && xdg[0] == '/' ? xdg : NULL, *below = "tidemark";
  if (base == NULL) {
    base = getenv("HOME"); // Node's os.homedir(): $HOME, else the password database
    if (!base || !*base) {
      struct passwd *pw = getpwuid(getuid());
      base = pw ? pw->pw_dir : NULL;
    }
    below = ".local/share/tidemark";
  }
  // A relative home would be taken from the caller's folder by Node; left to the launcher.
  if (!base || base[0] != '/') return NULL;
  char *folded = resolve("/", base), *dir = grow(NULL, strlen(folded) + strlen(below) + 2);
  sprintf(dir, "%s/%s", strcmp(folded, "/") == 0 ? "" : folded, below);
  free(folded);
  return dir;
}

// ---------------------------------------------------------------- the request

struct text {
  char *p;
  size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n) {
  if (t->len + n + 1 > t->cap) t->p = grow(t->p, t->cap = 2 * (t->len + n + 1));
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = '\0';
}

static void put_s(struct text *t, const char *s) { put(t, s, strlen(s)); }

/** A JSON string: quotes, backslashes and control characters escaped; other bytes as they are (UTF-8). */
static void put_json(struct text *t, const char *s) {
  put_s(t, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
    else if (c == '\n') strcpy(esc, "\\n");
    else if (c == '\r') strcpy(esc, "\\r");
    else if (c == '\t') strcpy(esc, "\\t");
    else if (c < 0x20) snprintf(esc, sizeof esc, "\\u%04x", c);
    else {
      put(t, s, 1);
      continue;
    }
    put_s(t, esc);
  }
  put_s(t, "\"");
}

/** host-protocol.ts's HostRequest, one line. */
static struct text request_line(int argc, char **argv, const char *cwd) {
  struct text t = {0};
  put_s(&t, "{\"v\":");
  char v[16];
  snprintf(v, sizeof v, "%d", HOST_PROTOCOL);
  put_s(&t, v);
  put_s(&t, ",\"argv\":[");
  for (int i = 0; i < argc; i++) {
    if (i > 0) put_s(&t, ",");
    put_json(&t, argv[i]);
  }
  put_s(&t, "],\"cwd\":");
  put_json(&t, cwd);
  put_s(&t, ",\"env\":{");
  int first = 1;
  for (size_t i = 0; i < sizeof forwarded_env / sizeof *forwarded_env; i++) {
    const char *value = getenv(forwarded_env[i]);
    if (value == NULL) continue;
    if (!first) put_s(&t, ",");
    first = 0;
    put_json(&t, forwarded_env[i]);
    put_s(&t, ":");
    put_json(&t, value);
  }
  put_s(&t, isatty(2) ? "},\"isTTY\":true}\n" : "},\"isTTY\":false}\n");
  return t;
}

// ---------------------------------------------------------------- the host's replies

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) exit(1); // the caller's output is gone (a closed pipe): nothing left to tell
    p += w;
    n -= (size_t)w;
  }
}

static void put_utf8(struct text *t, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) b[0] = (char)cp, n = 1;
  else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
  else if (cp < 0x10000) b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3f)), b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
  else b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3f)), b[2] = (char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
  put(t, b, n);
}

static int hex4(const char *s, unsigned *out) {
  *out = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return 0;
    *out = *out << 4 | (unsigned)d;
  }
  return 1;
}

/**
 * Decodes the JSON string at `s` (just past its opening quote) into `out`, as UTF-8; a lone surrogate
 * becomes U+FFFD, as Node writes it. Returns the character after the closing quote, or NULL.
 */
static const char *json_string(const char *s, const char *end, struct text *out) {
  while (s < end && *s != '"') {
    if ((unsigned char)*s < 0x20) return NULL;
    if (*s != '\\') {
      const char *run = s;
      while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20) s++;
      put(out, run, (size_t)(s - run));
      continue;
    }
    if (++s >= end) return NULL;
    char simple = *s == '"' || *s == '\\' || *s == '/' ? *s : *s == 'b' ? '\b' : *s == 'f' ? '\f' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s == 't' ? '\t' : 0;
    if (simple) {
      put(out, &simple, 1);
      s++;
      continue;
    }
    unsigned cp, low;
    if (*s != 'u' || end - s < 5 || !hex4(s + 1, &cp)) return NULL;
    s += 5;
    if (cp >= 0xd800 && cp < 0xdc00 && end - s >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s + 2, &low) && low >= 0xdc00 && low < 0xe000) {
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
      s += 6;
    } else if (cp >= 0xd800 && cp < 0xe000) {
      cp = 0xfffd;
    }
    put_utf8(out, cp);
  }
  return s < end ? s + 1 : NULL;
}

static int starts(const char *line, const char *end, const char *prefix) {
  size_t n = strlen(prefix);
  return (size_t)(end - line) >= n && memcmp(line, prefix, n) == 0;
}

/** Acts on one frame; returns only for output (the command goes on). */
static void on_frame(const char *line, const char *end) {
  static struct text text;
  text.len = 0;
  int fd = starts(line, end, "{\"out\":\"") ? 1 : starts(line, end, "{\"err\":\"") ? 2 : starts(line, end, "{\"error\":\"") ? 0 : -1;
  if (fd >= 0) {
    const char *after = json_string(line + (fd == 0 ? 10 : 8), end, &text);
    if (after != NULL && end - after == 1 && *after == '}') {
      if (fd != 0) {
        write_all(fd, text.p, text.len);
        return;
      }
      write_all(2, "error: ", 7);
      write_all(2, text.p, text.len);
      write_all(2, "\n", 1);
      exit(1);
    }
  } else if (end - line == 14 && starts(line, end, "{\"local\":true}")) {
    run_launcher();
  } else if (starts(line, end, "{\"exit\":") && end[-1] == '}') {
    const char *n = line + 8, *digits = *n == '-' ? n + 1 : n;
    int ok = digits < end - 1;
    for (const char *d = digits; d < end - 1; d++) ok = ok && *d >= '0' && *d <= '9';
    if (ok) exit((int)(strtoll(n, NULL, 10) & 0xff));
  }
  fail("the Tidemark host (%s) sent a malformed reply", socket_path);
}

// ---------------------------------------------------------------- the command

static void on_interrupt(int sig) {
  (void)sig;
  interrupts_pending++;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return; // the host went away: the read below reports it
    p += w;
    n -= (size_t)w;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("usage: tidemark-client LAUNCHER [ARGUMENT…] (bin/tidemark runs it)\n", stderr);
    return 2;
  }
  launcher_argv = argv + 1;
  const char *off = getenv("TIDEMARK_HOST");
  char cwd[4096];
  if ((off && strcmp(off, "off") == 0) || getcwd(cwd, sizeof cwd) == NULL) run_launcher();
  char *dir = state_dir(argc - 2, argv + 2, cwd);
  if (dir == NULL) run_launcher();
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  struct stat st;
  if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/run/cli.sock", dir) >= (int)sizeof addr.sun_path) run_launcher();
  socket_path = addr.sun_path;
  if (lstat(addr.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) run_launcher();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Nothing sent yet: a socket nobody listens on (a host that died) runs the command here.
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) run_launcher();

  struct sigaction sa = {.sa_handler = on_interrupt}; // no SA_RESTART: poll returns at Ctrl-C
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  struct text request = request_line(argc - 2, argv + 2, cwd);
  send_all(fd, request.p, request.len);

  struct text in = {0};
  size_t scanned = 0, interrupts = 0;
  for (;;) {
    while (interrupts_pending > 0) {
      interrupts_pending--;
      if (++interrupts >= GIVE_UP_AFTER_INTERRUPTS) fail("interrupted; the Tidemark host (%s) cancels what it can of the command", socket_path);
      send_all(fd, "{\"interrupt\":true}\n", 19);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) continue; // EINTR: a Ctrl-C, handled above
    if (in.len + 65536 + 1 > in.cap) in.p = grow(in.p, in.cap = 2 * (in.len + 65536 + 1));
    ssize_t r = read(fd, in.p + in.len, 65536);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) fail("the Tidemark host (%s) closed the connection before the command ended; it may have run in part: check before running it again", socket_path);
    in.len += (size_t)r;
    size_t start = 0;
    for (char *nl; (nl = memchr(in.p + scanned, '\n', in.len - scanned)) != NULL; scanned = start) {
      const char *line = in.p + start, *end = nl;
      if ((size_t)(end - line) > MAX_LINE_BYTES) break;
      start = (size_t)(nl - in.p) + 1;
      // host-protocol.ts's LineReader skips blank lines (the host sends none, nor spaces around a frame)
      while (line < end && is_space(*line)) line++;
      while (end > line && is_space(end[-1])) end--;
      if (line < end) on_frame(line, end);
    }
    memmove(in.p, in.p + start, in.len - start);
    in.len -= start;
    scanned = in.len;
    if (in.len > MAX_LINE_BYTES) fail("the Tidemark host (%s) sent a line longer than %d bytes", socket_path, MAX_LINE_BYTES);
  }
}
