"""HarmAug (Lee et al., ICLR 2025): a jailbroken LLM writes new harmful instructions (prefilled requests,
filters), a responder answers them, a teacher labels them (teachers, local or over an OpenAI-compatible
server); ``run`` drives the stages of a recipe into resumable shards."""
