from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("plugin_id", "config_json", "data_dir", "manifest_json")
    PLUGIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    plugin_id: str
    config_json: str
    data_dir: str
    manifest_json: str
    def __init__(self, plugin_id: _Optional[str] = ..., config_json: _Optional[str] = ..., data_dir: _Optional[str] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class Export(_message.Message):
    __slots__ = ("kind", "name", "target", "options_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    target: str
    options_json: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., target: _Optional[str] = ..., options_json: _Optional[str] = ...) -> None: ...

class ActivateResponse(_message.Message):
    __slots__ = ("exports",)
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    exports: _containers.RepeatedCompositeFieldContainer[Export]
    def __init__(self, exports: _Optional[_Iterable[_Union[Export, _Mapping]]] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("target", "args_json")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    target: str
    args_json: str
    def __init__(self, target: _Optional[str] = ..., args_json: _Optional[str] = ...) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("result_json",)
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    def __init__(self, result_json: _Optional[str] = ...) -> None: ...

class EventRequest(_message.Message):
    __slots__ = ("target", "topic", "payload_json", "source", "id", "timestamp")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    target: str
    topic: str
    payload_json: str
    source: str
    id: str
    timestamp: float
    def __init__(self, target: _Optional[str] = ..., topic: _Optional[str] = ..., payload_json: _Optional[str] = ..., source: _Optional[str] = ..., id: _Optional[str] = ..., timestamp: _Optional[float] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("state_json", "from_version")
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    state_json: str
    from_version: str
    def __init__(self, state_json: _Optional[str] = ..., from_version: _Optional[str] = ...) -> None: ...

class ConfigChangeRequest(_message.Message):
    __slots__ = ("old_json", "new_json")
    OLD_JSON_FIELD_NUMBER: _ClassVar[int]
    NEW_JSON_FIELD_NUMBER: _ClassVar[int]
    old_json: str
    new_json: str
    def __init__(self, old_json: _Optional[str] = ..., new_json: _Optional[str] = ...) -> None: ...

class EnabledChangeRequest(_message.Message):
    __slots__ = ("enabled",)
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    def __init__(self, enabled: _Optional[bool] = ...) -> None: ...

class HostCall(_message.Message):
    __slots__ = ("id", "method", "params_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    method: str
    params_json: str
    def __init__(self, id: _Optional[int] = ..., method: _Optional[str] = ..., params_json: _Optional[str] = ...) -> None: ...

class HostReply(_message.Message):
    __slots__ = ("id", "result_json", "error_code", "error_message")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    result_json: str
    error_code: str
    error_message: str
    def __init__(self, id: _Optional[int] = ..., result_json: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ChannelFrame(_message.Message):
    __slots__ = ("target", "name", "data_json")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    target: str
    name: str
    data_json: str
    def __init__(self, target: _Optional[str] = ..., name: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...
