"""LangChain tools that expose memory, analytics and the numeric engines to LLM nodes,
READ-ONLY."""

from sovereign.tools.engine_tools import (
    MAX_OUTPUT_CHARS,
    STRESS_PATHS,
    EngineReader,
    engine_tools,
)
from sovereign.tools.memory_tools import (
    MAX_TRADES,
    MAX_VERSIONS,
    MemoryReader,
    memory_tools,
    readonly_memory_tools,
)
from sovereign.tools.readonly import (
    read_only_connect_args,
    read_only_engine,
    sqlite_read_only_url,
)

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_TRADES",
    "MAX_VERSIONS",
    "STRESS_PATHS",
    "EngineReader",
    "MemoryReader",
    "engine_tools",
    "memory_tools",
    "read_only_connect_args",
    "read_only_engine",
    "readonly_memory_tools",
    "sqlite_read_only_url",
]
