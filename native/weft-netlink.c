/*
 * weft-netlink: the agent's rtnetlink helper — C with libc only, one long-lived process per agent.
 *
 * An ADD used to start two `ip -batch` processes (one entered into the pod's netns with nsenter):
 * ~11 ms of the agent's ~12.6. This process speaks rtnetlink for the same batch lines instead
 * (src/kernel/netlink.ts sends them; src/datapath/plan.ts makes them), so a batch costs a pipe
 * round trip and a few netlink messages. It knows a small, fixed subset of iproute2's syntax —
 * exactly what the attachment plan produces — and answers "unsupported" for anything else
 * (before running any line of that batch), so the agent runs `ip` for it instead.
 *
 * Protocol, on stdin/stdout, one request at a time:
 *   request:  "batch NETNS PASSED COUNT\n" then COUNT lines, each an ip batch line
 *             NETNS: "-" (this process's netns) or a descriptor number of the agent's (its
 *             parent's) to run the batch in; PASSED: "-" or the agent's descriptor that
 *             "/proc/self/fd/3" in the lines stands for (as it does for a child `ip`).
 *   answer:   "ok\n" | "unsupported INDEX\n" | "err INDEX ERRNO MESSAGE\n"
 * The agent's descriptors are reached as /proc/<parent>/fd/N; the parent is the agent, which
 * holds them open while it waits. Stdin closed (the agent gone): exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINES 64
#define MAX_TOKENS 32
#define LINE_MAX_BYTES 4096

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

/* ---- a netlink message under construction ---- */

struct msg {
  union {
    struct nlmsghdr n;
    char buf[8192];
  } u;
};

static int add_attr(struct msg *m, unsigned short type, const void *data, size_t len) {
  size_t at = NLMSG_ALIGN(m->u.n.nlmsg_len);
  size_t rl = RTA_LENGTH(len);
  if (at + RTA_ALIGN(rl) > sizeof m->u.buf) return -1;
  struct rtattr *a = (struct rtattr *)(m->u.buf + at);
  a->rta_type = type;
  a->rta_len = (unsigned short)rl;
  if (len) memcpy(RTA_DATA(a), data, len);
  m->u.n.nlmsg_len = (unsigned)(at + RTA_ALIGN(rl));
  return 0;
}

static struct rtattr *nest_start(struct msg *m, unsigned short type) {
  struct rtattr *a = (struct rtattr *)(m->u.buf + NLMSG_ALIGN(m->u.n.nlmsg_len));
  return add_attr(m, type, NULL, 0) == 0 ? a : NULL;
}

static void nest_end(struct msg *m, struct rtattr *a) { a->rta_len = (unsigned short)(m->u.buf + m->u.n.nlmsg_len - (char *)a); }

static void *add_bytes(struct msg *m, size_t len) {
  size_t at = NLMSG_ALIGN(m->u.n.nlmsg_len);
  if (at + NLMSG_ALIGN(len) > sizeof m->u.buf) return NULL;
  memset(m->u.buf + at, 0, NLMSG_ALIGN(len));
  m->u.n.nlmsg_len = (unsigned)(at + NLMSG_ALIGN(len));
  return m->u.buf + at;
}

static void msg_init(struct msg *m, unsigned short type, unsigned short flags) {
  memset(&m->u.n, 0, sizeof m->u.n);
  m->u.n.nlmsg_len = NLMSG_LENGTH(0);
  m->u.n.nlmsg_type = type;
  m->u.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
}

/* The kernel's extended-ack text of the last error, if it sent one. */
static char ext_msg[512];

/* Sends one request and waits for its ack: 0, or a negative errno. */
static int talk(int sock, struct msg *m) {
  static unsigned seq;
  m->u.n.nlmsg_seq = ++seq;
  ext_msg[0] = 0;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(sock, m->u.buf, m->u.n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -errno;
  for (;;) {
    char buf[16384];
    ssize_t r = recv(sock, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    int left = (int)r;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      struct nlmsgerr *e = NLMSG_DATA(h);
      if (e->error && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
        /* the TLVs follow the echoed request header (capped: only its header is echoed) */
        size_t off = NLMSG_ALIGN(sizeof *e);
        if (!(h->nlmsg_flags & NLM_F_CAPPED)) off = NLMSG_ALIGN(sizeof(int) + e->msg.nlmsg_len);
        if (NLMSG_HDRLEN + off <= h->nlmsg_len) {
          int left = (int)(h->nlmsg_len - NLMSG_HDRLEN - off);
          for (struct rtattr *a = (struct rtattr *)((char *)e + off); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
            if (a->rta_type == NLMSGERR_ATTR_MSG) snprintf(ext_msg, sizeof ext_msg, "%.*s", (int)RTA_PAYLOAD(a), (char *)RTA_DATA(a));
          }
        }
      }
      return e->error;
    }
  }
}

static int open_socket(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(s, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl me = {.nl_family = AF_NETLINK};
  if (bind(s, (struct sockaddr *)&me, sizeof me) < 0) {
    close(s);
    return -1;
  }
  return s;
}

/* ---- values ---- */

static int parse_uint(const char *s, unsigned max, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || errno || v > max) return -1;
  *out = (unsigned)v;
  return 0;
}

static int hexdigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Exactly xx:xx:xx:xx:xx:xx, hex digits only. */
static int parse_mac(const char *s, unsigned char mac[6]) {
  if (strlen(s) != 17) return -1;
  for (int i = 0; i < 6; i++) {
    int hi = hexdigit(s[3 * i]), lo = hexdigit(s[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':')) return -1;
    mac[i] = (unsigned char)(hi * 16 + lo);
  }
  return 0;
}

struct prefix {
  int family;
  unsigned char addr[16];
  unsigned len;
};

/* "A" or "A/P" (P defaulting to the full length). */
static int parse_prefix(const char *s, struct prefix *p) {
  char a[INET6_ADDRSTRLEN + 8];
  if (strlen(s) >= sizeof a) return -1;
  strcpy(a, s);
  char *slash = strchr(a, '/');
  if (slash) *slash = 0;
  memset(p, 0, sizeof *p);
  if (inet_pton(AF_INET, a, p->addr) == 1) p->family = AF_INET, p->len = 32;
  else if (inet_pton(AF_INET6, a, p->addr) == 1) p->family = AF_INET6, p->len = 128;
  else return -1;
  unsigned max = p->len;
  if (slash && parse_uint(slash + 1, max, &p->len) < 0) return -1;
  return 0;
}

static size_t addr_len(int family) { return family == AF_INET ? 4 : 16; }

/* ---- the commands ---- */

/* What a line runs against: its socket, and the agent's descriptor for "/proc/self/fd/3". */
struct ctx {
  int sock;
  int passed; /* an open netns fd, or -1 */
};

static int ifindex(const char *name) {
  unsigned i = if_nametoindex(name);
  return i ? (int)i : -ENODEV;
}

/* link add name X [mtu N] [address MAC] type veth peer name Y [mtu N] [address MAC] [netns /proc/self/fd/3] */
static int link_add(struct ctx *c, char **t, int n, int run) {
  const char *name = NULL, *pname = NULL;
  unsigned mtu = 0, pmtu = 0;
  unsigned char mac[6], pmac[6];
  int has_mac = 0, has_pmac = 0, pnetns = 0, i = 2, peer = 0;
  while (i < n) {
    if (!peer && strcmp(t[i], "type") == 0 && i + 2 < n && strcmp(t[i + 1], "veth") == 0 && strcmp(t[i + 2], "peer") == 0) {
      peer = 1;
      i += 3;
      continue;
    }
    if (i + 1 >= n) return 1;
    const char *k = t[i], *v = t[i + 1];
    if (strcmp(k, "name") == 0) *(peer ? &pname : &name) = v;
    else if (strcmp(k, "mtu") == 0) { /* 0 is ip's to refuse */
      if (parse_uint(v, 65535, peer ? &pmtu : &mtu) < 0 || *(peer ? &pmtu : &mtu) == 0) return 1;
    }
    else if (strcmp(k, "address") == 0) {
      if (parse_mac(v, peer ? pmac : mac) < 0) return 1;
      *(peer ? &has_pmac : &has_mac) = 1;
    } else if (peer && strcmp(k, "netns") == 0 && strcmp(v, "/proc/self/fd/3") == 0) pnetns = 1;
    else return 1;
    i += 2;
  }
  if (!peer || !name || !pname || strlen(name) >= IFNAMSIZ || strlen(pname) >= IFNAMSIZ) return 1;
  if (!run) return 0;
  if (pnetns && c->passed < 0) return -EBADF;
  struct msg m;
  msg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  add_bytes(&m, sizeof(struct ifinfomsg));
  add_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
  if (mtu) add_attr(&m, IFLA_MTU, &mtu, sizeof mtu);
  if (has_mac) add_attr(&m, IFLA_ADDRESS, mac, 6);
  struct rtattr *info = nest_start(&m, IFLA_LINKINFO);
  add_attr(&m, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = nest_start(&m, IFLA_INFO_DATA);
  struct rtattr *p = nest_start(&m, VETH_INFO_PEER);
  add_bytes(&m, sizeof(struct ifinfomsg));
  add_attr(&m, IFLA_IFNAME, pname, strlen(pname) + 1);
  if (pmtu) add_attr(&m, IFLA_MTU, &pmtu, sizeof pmtu);
  if (has_pmac) add_attr(&m, IFLA_ADDRESS, pmac, 6);
  if (pnetns) add_attr(&m, IFLA_NET_NS_FD, &c->passed, sizeof c->passed);
  if (!p || !data || !info) return -ENOBUFS;
  nest_end(&m, p);
  nest_end(&m, data);
  nest_end(&m, info);
  return talk(c->sock, &m);
}

/* link set dev X up | link del dev X */
static int link_set_or_del(struct ctx *c, char **t, int n, int run) {
  int del = strcmp(t[1], "del") == 0;
  if (n != (del ? 4 : 5) || strcmp(t[2], "dev") != 0 || strlen(t[3]) >= IFNAMSIZ || (!del && strcmp(t[4], "up") != 0)) return 1;
  if (!run) return 0;
  struct msg m;
  msg_init(&m, del ? RTM_DELLINK : RTM_NEWLINK, 0);
  struct ifinfomsg *ifi = add_bytes(&m, sizeof *ifi);
  ifi->ifi_family = AF_UNSPEC;
  if (!del) ifi->ifi_change = IFF_UP, ifi->ifi_flags = IFF_UP;
  add_attr(&m, IFLA_IFNAME, t[3], strlen(t[3]) + 1);
  return talk(c->sock, &m);
}

static int scope_value(const char *s) {
  if (strcmp(s, "host") == 0) return RT_SCOPE_HOST;
  if (strcmp(s, "link") == 0) return RT_SCOPE_LINK;
  if (strcmp(s, "global") == 0) return RT_SCOPE_UNIVERSE;
  return -1;
}

/* addr add A/P dev X [scope S] [nodad] */
static int addr_add(struct ctx *c, char **t, int n, int run) {
  struct prefix a;
  if (n < 5 || parse_prefix(t[2], &a) < 0 || strcmp(t[3], "dev") != 0 || strlen(t[4]) >= IFNAMSIZ) return 1;
  /* iproute2's default: host scope for 127/8, else universe */
  int scope = a.family == AF_INET && a.addr[0] == 127 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE, nodad = 0;
  for (int i = 5; i < n; i++) {
    if (strcmp(t[i], "nodad") == 0 && a.family == AF_INET6) nodad = 1;
    else if (strcmp(t[i], "scope") == 0 && i + 1 < n && (scope = scope_value(t[i + 1])) >= 0) i++;
    else return 1;
  }
  if (!run) return 0;
  int idx = ifindex(t[4]);
  if (idx < 0) return idx;
  struct msg m;
  msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  struct ifaddrmsg *ifa = add_bytes(&m, sizeof *ifa);
  ifa->ifa_family = (unsigned char)a.family;
  ifa->ifa_prefixlen = (unsigned char)a.len;
  ifa->ifa_scope = (unsigned char)scope;
  ifa->ifa_index = (unsigned)idx;
  ifa->ifa_flags = nodad ? IFA_F_NODAD : 0;
  add_attr(&m, IFA_LOCAL, a.addr, addr_len(a.family));
  add_attr(&m, IFA_ADDRESS, a.addr, addr_len(a.family));
  if (nodad) {
    unsigned f = IFA_F_NODAD;
    add_attr(&m, IFA_FLAGS, &f, sizeof f);
  }
  return talk(c->sock, &m);
}

/* route add|append DST [via GW] dev X [scope S] [onlink]  (DST: A/P or "default") */
static int route_add(struct ctx *c, char **t, int n, int run) {
  int append = strcmp(t[1], "append") == 0;
  struct prefix dst, gw;
  int has_gw = 0, scope = -1, onlink = 0;
  const char *dev = NULL;
  if (n < 3) return 1;
  int dflt = strcmp(t[2], "default") == 0;
  if (!dflt && parse_prefix(t[2], &dst) < 0) return 1;
  for (int i = 3; i < n; i++) {
    if (strcmp(t[i], "via") == 0 && i + 1 < n && !strchr(t[i + 1], '/') && parse_prefix(t[i + 1], &gw) == 0) has_gw = 1, i++;
    else if (strcmp(t[i], "dev") == 0 && i + 1 < n && strlen(t[i + 1]) < IFNAMSIZ) dev = t[++i];
    else if (strcmp(t[i], "scope") == 0 && i + 1 < n && (scope = scope_value(t[i + 1])) >= 0) i++;
    else if (strcmp(t[i], "onlink") == 0) onlink = 1;
    else return 1;
  }
  int family = dflt ? (has_gw ? gw.family : -1) : dst.family;
  if (!dev || family < 0 || (has_gw && gw.family != family)) return 1;
  if (!run) return 0;
  int idx = ifindex(dev);
  if (idx < 0) return idx;
  struct msg m;
  msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | (append ? NLM_F_APPEND : NLM_F_EXCL));
  struct rtmsg *r = add_bytes(&m, sizeof *r);
  r->rtm_family = (unsigned char)family;
  r->rtm_dst_len = (unsigned char)(dflt ? 0 : dst.len);
  r->rtm_table = RT_TABLE_MAIN;
  r->rtm_protocol = RTPROT_BOOT;
  r->rtm_type = RTN_UNICAST;
  /* iproute2's default scope: link for a route without a gateway, else universe (the kernel
     ignores the scope of IPv6 routes) */
  r->rtm_scope = (unsigned char)(scope >= 0 ? scope : family == AF_INET && !has_gw ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  if (onlink) r->rtm_flags |= RTNH_F_ONLINK;
  if (!dflt) add_attr(&m, RTA_DST, dst.addr, addr_len(family));
  if (has_gw) add_attr(&m, RTA_GATEWAY, gw.addr, addr_len(family));
  add_attr(&m, RTA_OIF, &idx, sizeof idx);
  return talk(c->sock, &m);
}

/* 1: not a line this helper knows; 0 (dry run) or the kernel's answer (0 / -errno). */
static int line(struct ctx *c, char *text, int run) {
  char copy[LINE_MAX_BYTES];
  snprintf(copy, sizeof copy, "%s", text);
  char *t[MAX_TOKENS];
  int n = 0;
  for (char *s = strtok(copy, " "); s; s = strtok(NULL, " ")) {
    if (n == MAX_TOKENS) return 1;
    t[n++] = s;
  }
  if (n < 2) return 1;
  if (strcmp(t[0], "link") == 0 && strcmp(t[1], "add") == 0) return link_add(c, t, n, run);
  if (strcmp(t[0], "link") == 0 && (strcmp(t[1], "set") == 0 || strcmp(t[1], "del") == 0)) return link_set_or_del(c, t, n, run);
  if (strcmp(t[0], "addr") == 0 && strcmp(t[1], "add") == 0) return addr_add(c, t, n, run);
  if (strcmp(t[0], "route") == 0 && (strcmp(t[1], "add") == 0 || strcmp(t[1], "append") == 0)) return route_add(c, t, n, run);
  return 1;
}

/* ---- the loop ---- */

static int read_line(char *buf, size_t size) {
  if (!fgets(buf, (int)size, stdin)) return -1;
  size_t n = strlen(buf);
  if (n == 0 || buf[n - 1] != '\n') return -1; /* too long, or cut: the protocol is broken */
  buf[n - 1] = 0;
  return 0;
}

/* The agent: the parent this process started with. */
static pid_t agent;

static int open_agent_fd(const char *num) {
  unsigned fd;
  if (parse_uint(num, 1u << 20, &fd) < 0) return -EINVAL;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%u", (int)agent, fd);
  int r = open(path, O_RDONLY | O_CLOEXEC);
  return r < 0 ? -errno : r;
}

static void answer(const char *fmt, int index, int err) {
  if (err == 0 && index < 0) printf("%s\n", fmt);
  else if (err == 0) printf("%s %d\n", fmt, index);
  else printf("%s %d %d %s%s%s\n", fmt, index, -err, strerror(-err), ext_msg[0] ? ": " : "", ext_msg);
  fflush(stdout);
}

int main(void) {
  /* Ends with the agent; and a request still in the pipe of a dead agent is not run, so a
     reused pid's descriptors are never opened as the agent's. */
  agent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != agent) return 0; /* the agent died before prctl */
  int own_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int own_sock = open_socket();
  if (own_ns < 0 || own_sock < 0) {
    fprintf(stderr, "weft-netlink: cannot open a netlink socket: %s\n", strerror(errno));
    return 1;
  }
  static char lines[MAX_LINES][LINE_MAX_BYTES];
  char head[256];
  while (read_line(head, sizeof head) == 0) {
    if (getppid() != agent) return 0;
    char netns[32], passed[32];
    unsigned count;
    char cnt[32];
    if (sscanf(head, "batch %31s %31s %31s", netns, passed, cnt) != 3 || parse_uint(cnt, MAX_LINES, &count) < 0) {
      fprintf(stderr, "weft-netlink: bad request header\n");
      return 2;
    }
    for (unsigned i = 0; i < count; i++) {
      if (read_line(lines[i], sizeof lines[i]) < 0) {
        fprintf(stderr, "weft-netlink: bad request line\n");
        return 2;
      }
    }
    /* Every line known before any runs: an unknown one sends the whole batch to `ip`. */
    struct ctx c = {.sock = own_sock, .passed = -1};
    int unknown = -1;
    for (unsigned i = 0; i < count && unknown < 0; i++)
      if (line(&c, lines[i], 0) != 0) unknown = (int)i;
    if (unknown >= 0) {
      answer("unsupported", unknown, 0);
      continue;
    }
    ext_msg[0] = 0;
    int err = 0, failed = 0, entered = 0, sock = -1;
    if (strcmp(passed, "-") != 0) {
      c.passed = open_agent_fd(passed);
      if (c.passed < 0) err = c.passed, c.passed = -1, failed = -2;
    }
    if (!err && strcmp(netns, "-") != 0) {
      int fd = open_agent_fd(netns);
      if (fd < 0) err = fd, failed = -1;
      else {
        /* a socket made inside the netns stays bound to it after we leave */
        if (setns(fd, CLONE_NEWNET) < 0) err = -errno, failed = -1;
        else {
          entered = 1;
          sock = open_socket();
          if (sock < 0) err = -errno, failed = -1;
          else c.sock = sock;
        }
        close(fd);
      }
    }
    /* failed: the line, or -1 (the netns to run in could not be entered, as when nsenter
       fails) or -2 (the passed descriptor could not be opened, as ip's bad "netns" value) */
    if (!err) {
      for (unsigned i = 0; i < count; i++) {
        int r = line(&c, lines[i], 1);
        if (r != 0) {
          err = r > 0 ? -EINVAL : r;
          failed = (int)i;
          break;
        }
      }
    }
    /* if_nametoindex resolves in the current netns: back to ours before anything else */
    if (entered && setns(own_ns, CLONE_NEWNET) < 0) {
      fprintf(stderr, "weft-netlink: cannot return to its own netns: %s\n", strerror(errno));
      return 3;
    }
    if (sock >= 0) close(sock);
    if (c.passed >= 0) close(c.passed);
    if (err) answer("err", failed, err);
    else answer("ok", -1, 0);
  }
  return 0;
}
