"""LangChain (langchain-openai) against a live serving app on the real base model: structured output
and tool calls, invoked and streamed (four answers of ~30 tokens each)."""
from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from contracts.decoding import ModelTarget
from tests.worker.serving.conftest import serving_app_running

pytest.importorskip("langchain_openai")


class City(BaseModel):
    """A city and the country it is in."""

    name: str = Field(max_length=40, description="the city's name")
    country: str = Field(max_length=40, description="the country's name")
    population_millions: int = Field(ge=0, le=100)


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather of a city.

    Args:
        city: the city's name
        unit: "celsius" or "fahrenheit"
    """
    return f"20 degrees {unit} in {city}"


@pytest.fixture(scope="module")
def base_server(base_model_dir):
    with serving_app_running(base_model_dir, {"smol": ModelTarget("smol", None)}, batch_window_ms=20,
                             start_timeout_s=120) as (url, _):
        yield url


@pytest.fixture(scope="module")
def llm(base_server):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="smol", base_url=base_server, api_key="unused", temperature=0, max_tokens=48,
                      max_retries=0, timeout=300)


def test_with_structured_output_returns_a_valid_object(llm):
    structured = llm.with_structured_output(City)
    city = structured.invoke("Name a big city in France.")
    assert isinstance(city, City) and city.name
    streamed = list(structured.stream("Name a big city in Japan."))
    assert streamed and isinstance(streamed[-1], City) and streamed[-1].country


def test_bind_tools_returns_a_valid_tool_call(llm):
    bound = llm.bind_tools([get_weather], tool_choice="get_weather", parallel_tool_calls=False)
    msg = bound.invoke("What is the weather in Paris?")
    (call,) = msg.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str) and call["id"]
    assert get_weather.__name__ == call["name"] and get_weather(**call["args"])  # the args fit the function
    chunks = list(llm.bind_tools([get_weather], tool_choice="any", parallel_tool_calls=False).stream(
        "Weather in Oslo, please."))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    (streamed,) = whole.tool_calls
    assert streamed["name"] == "get_weather" and isinstance(streamed["args"]["city"], str)
    assert json.loads(whole.tool_call_chunks[0]["args"])["city"] == streamed["args"]["city"]
    assert whole.response_metadata["finish_reason"] == "tool_calls"
