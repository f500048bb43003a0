"""A chat request as agents send it, in OpenAI's Chat Completions shapes: its messages (text or parts,
images, assistant tool calls, tool results) and its options (tools, tool choice, response format, stop,
seed, top_p, user), checked and normalised once for every way in (native invoke, /v1/chat/completions,
tasks). The providers translate the result (agents.providers); the pipeline guards, counts and caches it.

Every problem is a ValidationError naming its place (`messages[2].content[0].image_url`), answered 400.
"""

import json
import re

from django.conf import settings
from django.core.exceptions import ValidationError

ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_URL = re.compile(r"^(https?://|data:image/(png|jpeg|gif|webp);base64,)", re.IGNORECASE)
MAX_TOOLS = 128
OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "stop", "seed", "top_p", "user")


def _invalid(place: str, message: str) -> ValidationError:
    return ValidationError({place: message})


# --- messages -------------------------------------------------------------------------------------------


def clean_messages(messages) -> list[dict]:
    """The conversation, checked and normalised (`developer` is a system message; only known keys kept)."""
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "Send a non-empty list of messages.")
    if len(messages) > settings.AGENT_MAX_MESSAGES:
        raise _invalid("messages", f"At most {settings.AGENT_MAX_MESSAGES} messages.")
    clean = [_clean_message(message, f"messages[{index}]") for index, message in enumerate(messages)]
    _check_tool_results(clean)
    characters = sum(len(text) for text in guarded_texts(clean))
    if characters > settings.AGENT_MAX_INPUT_CHARS:
        raise _invalid("messages", f"The conversation is longer than {settings.AGENT_MAX_INPUT_CHARS} characters.")
    if clean[-1]["role"] not in ("user", "tool"):
        raise _invalid("messages", "The last message must be the user's or a tool result.")
    return clean


def _clean_message(message, place: str) -> dict:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise _invalid(place, f"Each message needs a role ({', '.join(ROLES)}) and content.")
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    if role == "assistant":
        clean = {"role": role, "content": None}
        calls = message.get("tool_calls")
        if calls:
            clean["tool_calls"] = [_clean_tool_call(call, f"{place}.tool_calls[{i}]") for i, call in enumerate(calls)]
        if content is not None or not calls:
            clean["content"] = _clean_content(content, f"{place}.content", images=False)
        return clean
    clean = {"role": role, "content": _clean_content(content, f"{place}.content", images=role == "user")}
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id or len(call_id) > 200:
            raise _invalid(f"{place}.tool_call_id", "A tool result names the tool call it answers.")
        clean["tool_call_id"] = call_id
    if isinstance(message.get("name"), str) and role in ("user", "system"):
        clean["name"] = message["name"][:64]
    return clean


def _clean_content(content, place: str, *, images: bool):
    """Text, or a list of parts: text parts everywhere, image parts in user messages."""
    if isinstance(content, str):
        if not content.strip():
            raise _invalid(place, "Send non-empty text content.")
        return content
    if not isinstance(content, list) or not content:
        raise _invalid(place, "Send text, or a non-empty list of content parts.")
    parts = []
    for index, part in enumerate(content):
        where = f"{place}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and images:
            parts.append({"type": "image_url", "image_url": _clean_image(part.get("image_url"), f"{where}.image_url")})
        elif kind == "image_url":
            raise _invalid(where, "Images are taken in user messages only.")
        else:
            raise _invalid(where, "A content part is {'type': 'text', 'text': ...} or an image_url part.")
    if not any(part["type"] == "image_url" or part["text"].strip() for part in parts):
        raise _invalid(place, "Send non-empty text content.")
    return parts


def _clean_image(image, place: str) -> dict:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not IMAGE_URL.match(url):
        raise _invalid(place, "An image is an https:// URL or a data:image/(png|jpeg|gif|webp);base64 URL.")
    clean = {"url": url}
    if image.get("detail") is not None:
        if image["detail"] not in ("auto", "low", "high"):
            raise _invalid(f"{place}.detail", "detail is auto, low or high.")
        clean["detail"] = image["detail"]
    return clean


def _clean_tool_call(call, place: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise _invalid(place, "A tool call is {'id', 'type': 'function', 'function': {'name', 'arguments'}}.")
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise _invalid(f"{place}.id", "A tool call needs its id.")
    if not isinstance(function.get("name"), str) or not TOOL_NAME.match(function["name"]):
        raise _invalid(f"{place}.function.name", "A tool name is 1-64 letters, digits, _ or -.")
    if not isinstance(function.get("arguments"), str):
        raise _invalid(f"{place}.function.arguments", "A tool call's arguments are JSON text.")
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": function["arguments"]},
    }


def _check_tool_results(messages: list[dict]) -> None:
    """Each tool result answers a tool call made earlier in the conversation (as OpenAI checks)."""
    called = set()
    for index, message in enumerate(messages):
        called.update(call["id"] for call in message.get("tool_calls", ()))
        if message["role"] == "tool" and message["tool_call_id"] not in called:
            raise _invalid(f"messages[{index}].tool_call_id", "No earlier assistant message made this tool call.")


# --- options --------------------------------------------------------------------------------------------


def clean_options(data: dict) -> dict:
    """The request's options the providers take, checked; absent ones are left out."""
    options = {}
    if data.get("tools") is not None:
        options["tools"] = _clean_tools(data["tools"])
    if data.get("tool_choice") is not None:
        options["tool_choice"] = _clean_tool_choice(data["tool_choice"], options.get("tools", []))
    if data.get("parallel_tool_calls") is not None:
        if not isinstance(data["parallel_tool_calls"], bool):
            raise _invalid("parallel_tool_calls", "Must be true or false.")
        options["parallel_tool_calls"] = data["parallel_tool_calls"]
    if data.get("response_format") is not None:
        response_format = _clean_response_format(data["response_format"])
        if response_format["type"] != "text":
            options["response_format"] = response_format
    if data.get("stop") is not None:
        options["stop"] = _clean_stop(data["stop"])
    if data.get("seed") is not None:
        if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
            raise _invalid("seed", "Must be an integer.")
        options["seed"] = data["seed"]
    if data.get("top_p") is not None:
        top_p = data["top_p"]
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 <= top_p <= 1:
            raise _invalid("top_p", "Must be a number from 0 to 1.")
        options["top_p"] = float(top_p)
    if data.get("user") is not None:
        if not isinstance(data["user"], str) or len(data["user"]) > 256:
            raise _invalid("user", "Must be text of at most 256 characters.")
        options["user"] = data["user"]
    return options


def _clean_tools(tools) -> list[dict]:
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise _invalid("tools", f"Send a list of at most {MAX_TOOLS} function tools.")
    clean, names = [], set()
    for index, tool in enumerate(tools):
        place = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict):
            raise _invalid(place, "A tool is {'type': 'function', 'function': {'name', 'description', 'parameters'}}.")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise _invalid(f"{place}.function.name", "A tool name is 1-64 letters, digits, _ or -.")
        if name in names:
            raise _invalid(f"{place}.function.name", f"Two tools are named {name!r}.")
        names.add(name)
        entry = {"name": name}
        if function.get("description") is not None:
            if not isinstance(function["description"], str):
                raise _invalid(f"{place}.function.description", "Must be text.")
            entry["description"] = function["description"]
        if function.get("parameters") is not None:
            if not isinstance(function["parameters"], dict):
                raise _invalid(f"{place}.function.parameters", "Must be a JSON Schema object.")
            entry["parameters"] = function["parameters"]
        if function.get("strict") is not None:
            entry["strict"] = bool(function["strict"])
        clean.append({"type": "function", "function": entry})
    return clean


def _clean_tool_choice(choice, tools: list[dict]):
    if choice in ("none", "auto", "required"):
        if choice == "required" and not tools:
            raise _invalid("tool_choice", "'required' needs tools.")
        return choice
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str) or choice.get("type") != "function":
        raise _invalid("tool_choice", "none, auto, required or {'type': 'function', 'function': {'name': ...}}.")
    if name not in {tool["function"]["name"] for tool in tools}:
        raise _invalid("tool_choice", f"No tool is named {name!r}.")
    return {"type": "function", "function": {"name": name}}


def _clean_response_format(value) -> dict:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise _invalid("response_format", "{'type': 'text' | 'json_object' | 'json_schema', ...}.")
    schema = value.get("json_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not TOOL_NAME.match(schema["name"]):
        raise _invalid("response_format.json_schema", "Needs a name (letters, digits, _ or -) and a schema.")
    if not isinstance(schema.get("schema", {}), dict):
        raise _invalid("response_format.json_schema.schema", "Must be a JSON Schema object.")
    clean = {"name": schema["name"], "schema": schema.get("schema", {})}
    for key in ("description", "strict"):
        if schema.get(key) is not None:
            clean[key] = schema[key]
    return {"type": "json_schema", "json_schema": clean}


def _clean_stop(stop) -> list[str]:
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not 1 <= len(sequences) <= 4:
        raise _invalid("stop", "Up to 4 sequences (text).")
    if not all(isinstance(sequence, str) and sequence for sequence in sequences):
        raise _invalid("stop", "Each stop sequence is non-empty text.")
    return sequences


# --- reading a clean conversation ---------------------------------------------------------------------


def text_of(content) -> str:
    """The text of a message's content (its text parts, joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def guarded_texts(messages: list[dict]) -> list[str]:
    """What the content guard reads and the size limits count: text, tool results and tool arguments."""
    texts = []
    for message in messages:
        if message.get("content") is not None:
            texts.append(text_of(message["content"]))
        texts.extend(call["function"]["arguments"] for call in message.get("tool_calls", ()))
    return texts


def counted_texts(messages: list[dict], options: dict) -> list[str]:
    """What the token estimate and the worst case count: the messages' texts, and the tool definitions and
    the response schema the provider reads as part of the prompt."""
    texts = guarded_texts(messages)
    texts.extend(json.dumps(tool["function"], separators=(",", ":")) for tool in options.get("tools", ()))
    if "response_format" in options:
        texts.append(json.dumps(options["response_format"], separators=(",", ":")))
    return texts


def image_count(messages: list[dict]) -> int:
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part["type"] == "image_url"
    )


def last_user_text(messages: list[dict]) -> str:
    return next((text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
