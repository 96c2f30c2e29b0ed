// kv: a Redis-protocol (RESP2) key-value server. PING, ECHO, SET, GET, DEL,
// INCR, EXISTS, MGET, MSET, with pipelining; one G per connection; the data
// in a map of 64 shards, each guarded by a gort::mutex (a G that waits for
// a shard parks, its M runs other Gs). redis-benchmark can drive it:
//
//   ./build/kv --addr 127.0.0.1:6380 --procs 2 &
//   redis-benchmark -p 6380 -t set,get -P 16 -q
//
// Malformed input gets "-ERR Protocol error: ..." and the connection is
// closed (the stream cannot be resynchronised); an unknown command or a
// wrong argument count gets -ERR and the connection goes on.
#include "kv_server.hpp"
#include "server_common.hpp"

int main(int argc, char** argv) {
  const server_flags f = parse_flags(argc, argv, "127.0.0.1:6380");
  kv::store db;
  return serve(f, "kv", [&db](gort::net::conn& c) { kv::handle(db, c); });
}
