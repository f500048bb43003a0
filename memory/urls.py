from memory import api

api_routes = [("memories", api.MemoryViewSet, "memory")]
