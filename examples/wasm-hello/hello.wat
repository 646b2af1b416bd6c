;; wasm-hello: a plughost WebAssembly plugin written by hand in WebAssembly text format.
;;
;; It follows docs/wasm-abi.md:
;;   exports  memory, alloc, dealloc, plughost_activate, plughost_exports, handlers, add
;;   imports  plughost.log, plughost.emit
;; Handlers take (ptr, len) of a UTF-8 JSON request and return an i64 packing
;; (result_ptr << 32 | result_len) of a JSON envelope {"ok": ...} / {"error": {...}}, or 0
;; for {"ok": null}.
(module
  (import "plughost" "log" (func $log (param i32 i32 i32)))
  (import "plughost" "emit" (func $emit (param i32 i32) (result i64)))

  (memory (export "memory") 1)

  ;; static strings (below the heap; dealloc ignores them)
  (data (i32.const 16) "{\"ok\":{\"commands\":[{\"name\":\"wasm-hello.greet\",\"export\":\"greet\"},"
                       "{\"name\":\"wasm-hello.announce\",\"export\":\"announce\"}]}}")
  ;; offset 16, length 117
  (data (i32.const 256) "{\"ok\":{\"greeting\":\"hello from wasm\",\"request\":")
  ;; offset 256, length 46
  (data (i32.const 320) "}}")
  (data (i32.const 336) "wasm-hello activated")
  ;; offset 336, length 20
  (data (i32.const 368) "{\"topic\":\"hello.greeted\",\"payload\":")
  ;; offset 368, length 35
  (data (i32.const 416) "}")

  ;; ---- a bump allocator ------------------------------------------------------------------
  ;; Allocations bump $heap; when every live allocation has been freed the heap starts over.
  ;; That is all a request/response plugin needs: the host frees both buffers after each call.
  (global $heap_base i32 (i32.const 1024))
  (global $heap (mut i32) (i32.const 1024))
  (global $live (mut i32) (i32.const 0))

  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    ;; align to 8
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        ;; grow by the missing pages; memory.grow returns -1 when the host refuses
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                               (i32.const 65535))
                                      (i32.const 16)))
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

  ;; ---- lifecycle -------------------------------------------------------------------------
  (func (export "plughost_activate") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 1) (i32.const 336) (i32.const 20))
    (i64.const 0))

  (func (export "plughost_exports") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (i32.const 16) (i32.const 117)))

  ;; ---- handlers ----------------------------------------------------------------------------
  ;; greet: {"ok":{"greeting":"hello from wasm","request":<the request JSON>}}
  (func (export "greet") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $n i32)
    (local.set $n (i32.add (local.get $len) (i32.const 48)))
    (local.set $out (call $alloc (local.get $n)))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (memory.copy (local.get $out) (i32.const 256) (i32.const 46))
    (memory.copy (i32.add (local.get $out) (i32.const 46)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 46) (local.get $len)))
                 (i32.const 320) (i32.const 2))
    (call $pack (local.get $out) (local.get $n)))

  ;; announce: emit "hello.greeted" with the request as payload; return the host's answer
  ;; (0 = ok, or the host's error envelope, e.g. permission.denied, passed straight on)
  (func (export "announce") (param $ptr i32) (param $len i32) (result i64)
    (local $req i32) (local $n i32)
    (local.set $n (i32.add (local.get $len) (i32.const 36)))
    (local.set $req (call $alloc (local.get $n)))
    (if (i32.eqz (local.get $req)) (then unreachable))
    (memory.copy (local.get $req) (i32.const 368) (i32.const 35))
    (memory.copy (i32.add (local.get $req) (i32.const 35)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $req) (i32.add (i32.const 35) (local.get $len)))
                 (i32.const 416) (i32.const 1))
    (call $emit (local.get $req) (local.get $n))
    (call $dealloc (local.get $req) (local.get $n)))

  ;; a trivial numeric export, for the fast path and the benchmark
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
)
