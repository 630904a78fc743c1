"""Reference: the smallest BentoML service (what the framework alone costs per request)."""

import bentoml


@bentoml.service(name="hello")
class Hello:
    @bentoml.api
    def recommend(self, user_id: str, k: int = 10) -> dict:
        return {"user_id": user_id, "items": [], "source": "hello"}
