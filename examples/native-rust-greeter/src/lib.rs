//! A native plughost plugin in Rust (a `cdylib`, no crate dependencies): the C ABI of
//! include/plughost.h, written out by hand. Build: `cargo build --release`, then copy
//! target/release/libgreeter.so into package/ (the plugin folder, next to its plugin.toml).

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

const ABI_VERSION: u32 = 1;
const OK: i32 = 0;
const NO_TARGET: i32 = 2;

#[repr(C)]
pub struct Host {
    abi_version: u32,
    data: *mut c_void,
    call: extern "C" fn(*mut c_void, *const c_char, *const c_char, usize, *mut *mut c_char,
                        *mut usize) -> i32,
    free_result: extern "C" fn(*mut c_void, *mut c_char),
    log: extern "C" fn(*mut c_void, i32, *const c_char, usize),
}

const HEADER: usize = std::mem::size_of::<usize>();

/// Hand `text` to the host; it gives it back to `plughost_free`. The allocation starts with its
/// own length, so `plughost_free(ptr)` can rebuild and drop it.
fn give(text: String, out: *mut *mut c_char, out_len: *mut usize) {
    let body = text.into_bytes();
    let mut block = Vec::with_capacity(HEADER + body.len());
    block.extend_from_slice(&body.len().to_ne_bytes());
    block.extend_from_slice(&body);
    let block = Box::into_raw(block.into_boxed_slice()) as *mut u8;
    unsafe {
        *out_len = body.len();
        *out = block.add(HEADER) as *mut c_char;
    }
}

/// The string value of `"key":"..."` in a flat JSON object (enough for this example).
fn string_arg(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{}\":\"", key);
    let start = json.find(&pattern)? + pattern.len();
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_string())
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[no_mangle]
pub extern "C" fn plughost_abi_version() -> u32 {
    ABI_VERSION
}

#[no_mangle]
pub extern "C" fn plughost_init(_host: *const Host, out: *mut *mut c_char,
                                out_len: *mut usize) -> i32 {
    give(r#"{"exports": [{"kind": "command", "name": "greet", "target": "greet"}]}"#
             .to_string(), out, out_len);
    OK
}

#[no_mangle]
pub extern "C" fn plughost_call(target: *const c_char, args: *const c_char, args_len: usize,
                                out: *mut *mut c_char, out_len: *mut usize) -> i32 {
    unsafe {
        *out = ptr::null_mut();
        *out_len = 0;
    }
    let target = unsafe { CStr::from_ptr(target) }.to_string_lossy();
    let args = unsafe { std::slice::from_raw_parts(args as *const u8, args_len) };
    let args = String::from_utf8_lossy(args);
    match target.as_ref() {
        "greet" => {
            let name = string_arg(&args, "name").unwrap_or_else(|| "world".to_string());
            give(quote(&format!("Hello, {}!", name)), out, out_len);
            OK
        }
        _ => NO_TARGET,
    }
}

#[no_mangle]
pub extern "C" fn plughost_free(ptr: *mut c_char) {
    if ptr.is_null() {
        return;
    }
    unsafe {
        let block = (ptr as *mut u8).sub(HEADER);
        let mut len = [0u8; HEADER];
        ptr::copy_nonoverlapping(block, len.as_mut_ptr(), HEADER);
        let total = HEADER + usize::from_ne_bytes(len);
        drop(Box::from_raw(ptr::slice_from_raw_parts_mut(block, total)));
    }
}

#[no_mangle]
pub extern "C" fn plughost_shutdown() {}
