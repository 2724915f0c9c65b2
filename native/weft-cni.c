/*
 * weft-cni: the CNI plugin executable runtimes run — a forwarder, C with libc only.
 *
 * It starts no JavaScript runtime. It carries one plugin execution to the node agent over the
 * agent's unix socket — the CNI_* environment, stdin, and the pod's netns as an open file (the
 * agent opens /proc/<this pid>/fd/<n> while this process waits, so it reaches the netns whatever
 * mount namespace either of them is in) — and the agent's answer back: stdout and exit status.
 * Every CNI rule, check, conversion and message is the agent's (src/agent/exec.ts); this file
 * knows the protocol to the agent, not the CNI spec. It answers by itself only:
 *   - no CNI_COMMAND: the about banner on stderr, exit 0;
 *   - VERSION: the version list (generated at build time from the TypeScript source);
 *   - stdin larger than the limit, or not closed in time: code 5;
 *   - a config that is not one JSON object: code 6 (it must read the agent's socket from it);
 *   - the agent not reachable: code 11 (try again), and 50 for STATUS.
 * Constants come from weft-cni-gen.h, which scripts/bundle.mjs writes from the TypeScript.
 *
 * The request: POST WEFT_EXEC_PATH, a JSON body of base64 strings (no escaping to get wrong):
 *   {"env":{"CNI_COMMAND":"<b64>",...},"stdin":"<b64>","pid":N,"netnsFd":F,"netnsFile":"DEV:INO"}
 * or "netnsErrno":"ENOENT" when CNI_NETNS could not be opened here. The answer: the body is
 * stdout as it is, the header x-cni-exit the exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "weft-cni-gen.h"

/* The agent answers a CNI result or error: far below this. */
#define ANSWER_LIMIT (8u << 20)

/* A growable byte buffer; allocation failure ends the process (code 5: nothing was done). */
struct buf {
  char *p;
  size_t n, cap;
};

static void fail_io(const char *what);

/* Room for `more` bytes and a NUL; the contents stay NUL-terminated, even when empty. */
static void buf_grow(struct buf *b, size_t more) {
  if (b->n + more + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) fail_io("out of memory");
    b->p = p;
    b->cap = cap;
  }
  b->p[b->n] = 0;
}

static void buf_add(struct buf *b, const char *s, size_t n) {
  buf_grow(b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(struct buf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_b64(struct buf *b, const unsigned char *s, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  buf_grow(b, (n + 2) / 3 * 4);
  char *o = b->p + b->n;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    *o++ = tab[s[i] >> 2];
    *o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
    *o++ = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
    *o++ = tab[s[i + 2] & 63];
  }
  if (i < n) {
    *o++ = tab[s[i] >> 2];
    if (i + 1 < n) {
      *o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
      *o++ = tab[(s[i + 1] & 15) << 2];
    } else {
      *o++ = tab[(s[i] & 3) << 4];
      *o++ = '=';
    }
    *o++ = '=';
  }
  b->n = (size_t)(o - b->p);
  b->p[b->n] = 0;
}

/* A JSON string literal of arbitrary bytes (control characters escaped; bytes >= 0x80 as they are). */
static void buf_json(struct buf *b, const char *s) {
  buf_str(b, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') {
      char e[2] = {'\\', (char)*c};
      buf_add(b, e, 2);
    } else if (*c < 0x20 || *c == 0x7f) {
      buf_fmt(b, "\\u%04x", *c);
    } else {
      buf_add(b, (const char *)c, 1);
    }
  }
  buf_str(b, "\"");
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, 1000);
        continue;
      }
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* The version a CNI error object carries: the config's, when stdin said one. */
static char *conf_version;

/* A CNI error object on stdout, exit 1 — the spec's contract. */
static void fail(int code, const char *msg, const char *details) {
  struct buf b = {0};
  buf_str(&b, "{");
  if (conf_version) {
    buf_str(&b, "\"cniVersion\":");
    buf_json(&b, conf_version);
    buf_str(&b, ",");
  }
  buf_fmt(&b, "\"code\":%d,\"msg\":", code);
  buf_json(&b, msg);
  if (details) {
    buf_str(&b, ",\"details\":");
    buf_json(&b, details);
  }
  buf_str(&b, "}");
  write_all(1, b.p, b.n);
  exit(1);
}

static void fail_io(const char *what) { fail(5, what, NULL); }

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for fd to be ready for `events` until the deadline; 0 when the time ran out. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd pfd = {fd, events, 0};
    int r = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 1; /* let the read or write report it */
  }
}

/* stdin: at most WEFT_STDIN_LIMIT bytes, closed within WEFT_STDIN_TIMEOUT_MS. */
static void read_stdin(struct buf *in) {
  long long deadline = now_ms() + WEFT_STDIN_TIMEOUT_MS;
  for (;;) {
    if (!wait_fd(0, POLLIN, deadline)) fail_io(WEFT_MSG_STDIN_TIMEOUT);
    buf_grow(in, 65536);
    ssize_t r = read(0, in->p + in->n, 65536);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      char msg[256];
      snprintf(msg, sizeof msg, "error reading network config from stdin: %s", strerror(errno));
      fail_io(msg);
    }
    if (r == 0) break;
    in->n += (size_t)r;
    in->p[in->n] = 0;
    if (in->n > WEFT_STDIN_LIMIT) fail_io(WEFT_MSG_STDIN_TOO_LARGE);
  }
  buf_grow(in, 1);
  in->p[in->n] = 0;
}

/*
 * The value of a top-level string member of a JSON object, decoded, or NULL (not JSON, not an
 * object, no such member, not a string). Enough to find the agent's socket; everything else in
 * the config is the agent's to read.
 */
static const char *jp;

static void ws(void) {
  while (*jp == ' ' || *jp == '\t' || *jp == '\n' || *jp == '\r') jp++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses a string at jp into out (when not NULL); 0 on a syntax error. */
static int jstring(struct buf *out) {
  if (*jp != '"') return 0;
  jp++;
  while (*jp && *jp != '"') {
    unsigned char c = (unsigned char)*jp++;
    if (c != '\\') {
      if (out) buf_add(out, (const char *)&c, 1);
      continue;
    }
    char e = *jp++;
    const char *simple = "\"\\/bfnrt";
    const char *repl = "\"\\/\b\f\n\r\t";
    const char *k = e ? strchr(simple, e) : NULL;
    if (k) {
      if (out) buf_add(out, &repl[k - simple], 1);
    } else if (e == 'u') {
      unsigned v = 0;
      for (int i = 0; i < 4; i++) {
        int h = hexval(*jp++);
        if (h < 0) return 0;
        v = v * 16 + (unsigned)h;
      }
      if (out) { /* UTF-8; surrogate pairs are rare in a socket path: kept as two 3-byte units */
        char u[3];
        if (v < 0x80) buf_add(out, (u[0] = (char)v, u), 1);
        else if (v < 0x800) { u[0] = (char)(0xc0 | (v >> 6)); u[1] = (char)(0x80 | (v & 63)); buf_add(out, u, 2); }
        else { u[0] = (char)(0xe0 | (v >> 12)); u[1] = (char)(0x80 | ((v >> 6) & 63)); u[2] = (char)(0x80 | (v & 63)); buf_add(out, u, 3); }
      }
    } else {
      return 0;
    }
  }
  if (*jp != '"') return 0;
  jp++;
  return 1;
}

static int jvalue(int depth) {
  ws();
  if (depth > 1000) return 0;
  if (*jp == '"') return jstring(NULL);
  if (*jp == '{' || *jp == '[') {
    char close = *jp == '{' ? '}' : ']';
    int obj = *jp == '{';
    jp++;
    ws();
    if (*jp == close) return jp++, 1;
    for (;;) {
      ws();
      if (obj) {
        if (!jstring(NULL)) return 0;
        ws();
        if (*jp++ != ':') return 0;
      }
      if (!jvalue(depth + 1)) return 0;
      ws();
      if (*jp == ',') { jp++; continue; }
      if (*jp == close) return jp++, 1;
      return 0;
    }
  }
  const char *start = jp;
  while (*jp && !strchr(",}] \t\r\n", *jp)) jp++; /* numbers, true, false, null */
  return jp > start;
}

static char *json_member(const char *doc, const char *name) {
  char *found = NULL; /* the last occurrence wins, as in JSON.parse */
  jp = doc;
  ws();
  if (*jp++ != '{') return NULL;
  ws();
  if (*jp == '}') return NULL;
  for (;;) {
    struct buf key = {0};
    buf_grow(&key, 0);
    ws();
    if (!jstring(&key)) return free(key.p), free(found), NULL;
    ws();
    if (*jp++ != ':') return free(key.p), free(found), NULL;
    ws();
    /* compared with its length: a key with an escaped NUL is another key */
    int match = key.n == strlen(name) && memcmp(key.p, name, key.n) == 0;
    free(key.p);
    if (match && *jp == '"') {
      struct buf val = {0};
      buf_grow(&val, 0);
      if (!jstring(&val)) return free(val.p), free(found), NULL;
      free(found);
      found = val.p;
    } else {
      if (match) free(found), found = NULL; /* a later non-string "socket" wins too */
      if (!jvalue(0)) return free(found), NULL;
    }
    ws();
    if (*jp == ',') { jp++; continue; }
    return found;
  }
}

/* Why stdin is not one JSON object, or NULL when it is (lenient: the agent has the last word). */
static const char *config_problem(const char *doc) {
  jp = doc;
  ws();
  if (!*jp) return WEFT_MSG_CONFIG_EMPTY;
  if (*jp != '{') return jvalue(0) ? WEFT_MSG_CONFIG_NOT_OBJECT : WEFT_MSG_CONFIG_SYNTAX;
  if (!jvalue(0)) return WEFT_MSG_CONFIG_SYNTAX;
  ws();
  return *jp ? WEFT_MSG_CONFIG_SYNTAX : NULL;
}

static const char *errno_name(int e) {
  switch (e) {
  case ENOENT: return "ENOENT";
  case ENOTDIR: return "ENOTDIR";
  case EACCES: return "EACCES";
  case EPERM: return "EPERM";
  case ELOOP: return "ELOOP";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case EISDIR: return "EISDIR";
  case ENXIO: return "ENXIO";
  case ECONNREFUSED: return "ECONNREFUSED";
  case EINVAL: return "EINVAL";
  default: return "EIO";
  }
}

static const char *const FORWARDED[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

int main(void) {
  const char *cmd = getenv("CNI_COMMAND");
  if (!cmd || !*cmd) {
    write_all(2, WEFT_ABOUT, strlen(WEFT_ABOUT));
    return 0;
  }
  if (strcmp(cmd, "VERSION") == 0) {
    write_all(1, WEFT_VERSION_JSON, strlen(WEFT_VERSION_JSON));
    return 0;
  }
  struct buf in = {0};
  read_stdin(&in);
  const char *bad_config = config_problem(in.p);
  if (bad_config) fail(6, bad_config, WEFT_MSG_CONFIG_DETAILS);
  conf_version = json_member(in.p, "cniVersion");
  char *socket_path = json_member(in.p, "socket");
  /* Only an absolute path is connected to; anything else is the agent's to refuse (code 7)
     when it reads the config, so the default socket is asked. */
  const char *sock = socket_path && socket_path[0] == '/' ? socket_path : WEFT_DEFAULT_SOCKET;
  int status = strcmp(cmd, "STATUS") == 0;

  /* The pod's netns, opened here where the runtime's path is valid; the agent opens our fd. */
  const char *netns = getenv("CNI_NETNS");
  int nsfd = -1, nserr = 0;
  if (netns && *netns) {
    /* O_PATH: nothing is opened for real here (a device given as CNI_NETNS is not touched);
       the agent reopens it through /proc only once it knows it is a regular file. */
    nsfd = open(netns, O_PATH | O_CLOEXEC);
    if (nsfd < 0) nserr = errno;
  }

  struct buf body = {0};
  buf_str(&body, "{\"env\":{");
  int first = 1;
  for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) {
    const char *v = getenv(FORWARDED[i]);
    if (!v) continue;
    buf_fmt(&body, "%s\"%s\":\"", first ? "" : ",", FORWARDED[i]);
    buf_b64(&body, (const unsigned char *)v, strlen(v));
    buf_str(&body, "\"");
    first = 0;
  }
  buf_str(&body, "},\"stdin\":\"");
  buf_b64(&body, (const unsigned char *)in.p, in.n);
  buf_fmt(&body, "\",\"pid\":%d", (int)getpid());
  /* Device and inode let the agent make sure /proc/<pid>/fd/<n> is this file (not, in another
     pid namespace, some other process's). */
  struct stat nsst;
  if (nsfd >= 0 && fstat(nsfd, &nsst) == 0)
    buf_fmt(&body, ",\"netnsFd\":%d,\"netnsFile\":\"%ju:%ju\"", nsfd, (uintmax_t)nsst.st_dev, (uintmax_t)nsst.st_ino);
  else if (nserr) buf_fmt(&body, ",\"netnsErrno\":\"%s\"", errno_name(nserr));
  buf_str(&body, "}");

  struct buf req = {0};
  buf_fmt(&req, "POST %s HTTP/1.1\r\nHost: weft\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", WEFT_EXEC_PATH, body.n);
  buf_add(&req, body.p, body.n);

  char msg[4096 + 128];
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int too_long = strlen(sock) >= sizeof addr.sun_path;
  if (!too_long) memcpy(addr.sun_path, sock, strlen(sock) + 1);
  /* connect waits while the agent's backlog is full: at most the agent timeout */
  struct timeval tv = {.tv_sec = WEFT_AGENT_TIMEOUT_MS / 1000, .tv_usec = 0};
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (fd < 0 || too_long || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int e = too_long ? ENAMETOOLONG : errno;
    snprintf(msg, sizeof msg, "the weft agent is not reachable at %.4000s (%s)", sock, errno_name(e));
    fail(status ? 50 : 11, msg, "start it with `weft agent`, or check \"socket\" in the network config");
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  /* The request, then the answer until the agent closes: within WEFT_AGENT_TIMEOUT_MS. */
  long long deadline = now_ms() + WEFT_AGENT_TIMEOUT_MS;
  size_t off = 0;
  while (off < req.n) {
    if (!wait_fd(fd, POLLOUT, deadline)) break;
    ssize_t w = send(fd, req.p + off, req.n - off, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) break; /* the agent may have answered already (refusing): read it */
    off += (size_t)w;
  }
  struct buf res = {0};
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      snprintf(msg, sizeof msg, "the weft agent at %.4000s failed: no answer within %d s", sock, WEFT_AGENT_TIMEOUT_MS / 1000);
      fail(status ? 50 : 11, msg, NULL);
    }
    buf_grow(&res, 65536);
    ssize_t r = read(fd, res.p + res.n, 65536);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    res.n += (size_t)r;
    res.p[res.n] = 0;
    if (res.n > ANSWER_LIMIT) {
      snprintf(msg, sizeof msg, "the weft agent at %.4000s failed: its answer is larger than %u bytes", sock, ANSWER_LIMIT);
      fail(status ? 50 : 11, msg, NULL);
    }
  }
  if (nsfd >= 0) close(nsfd);

  /* Only a whole answer of the agent's (an exit status, the body as long as it says) is
     printed; anything else — another server, an older agent, a cut connection — is code 11. */
  buf_grow(&res, 0);
  char *head_end = strstr(res.p, "\r\n\r\n");
  if (!head_end || strncmp(res.p, "HTTP/1.", 7) != 0) {
    snprintf(msg, sizeof msg, "the weft agent at %.4000s failed: %s", sock, res.n ? "not an HTTP answer" : "it closed the connection without an answer");
    fail(status ? 50 : 11, msg, NULL);
  }
  *head_end = 0;
  char *bodyp = head_end + 4;
  size_t blen = res.n - (size_t)(bodyp - res.p);
  int exit_code = -1;
  long long cl = -1;
  for (char *h = strstr(res.p, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
    char *v = strchr(h + 2, ':');
    if (!v) continue;
    for (v++; *v == ' ' || *v == '\t'; v++) {
    }
    if (strncasecmp(h + 2, "x-cni-exit:", 11) == 0) exit_code = (v[0] == '0' || v[0] == '1') && (v[1] == '\r' || v[1] == 0) ? v[0] - '0' : -1;
    if (strncasecmp(h + 2, "content-length:", 15) == 0) {
      char *endp;
      errno = 0;
      unsigned long long n = strtoull(v, &endp, 10);
      cl = endp != v && errno == 0 && n <= ANSWER_LIMIT ? (long long)n : -1;
    }
  }
  if (exit_code < 0 || cl < 0 || (size_t)cl > blen) {
    snprintf(msg, sizeof msg, "the weft agent at %.4000s failed: %s", sock,
             exit_code < 0 ? "its answer carries no exit status (is it a weft agent of this version?)"
             : cl < 0      ? "its answer has no length"
                           : "its answer was cut short");
    fail(status ? 50 : 11, msg, NULL);
  }
  blen = (size_t)cl;
  write_all(1, bodyp, blen);
  return exit_code;
}
