"""guard-sdk serve: the guard behind an HTTP endpoint that apps already know how to call (OpenAI's
/v1/moderations), plus /v1/classify for prompt + response pairs. Needs the serve extra (starlette, uvicorn)."""
