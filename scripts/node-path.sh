# Sourced after setup.sh: the Node.js 24 that setup installed, when the machine's own is older,
# comes first on PATH (setup also links it as /usr/local/bin/node).
if [ -x /usr/local/lib/weft-node/bin/node ]; then
  PATH="/usr/local/lib/weft-node/bin:$PATH"
  export PATH
fi
