# Import-only stand-in for pydantic 2 on a host without it (the device's Python 3.12 has
# none, and pydantic_core is compiled per Python version): lets compressed_tensors' modules
# define their classes. The check script never builds a pydantic model; it calls the
# compressors' decompress_weight with plain argument objects.
class BaseModel:
    model_config = {}
    def __init_subclass__(cls, **kw):
        super().__init_subclass__()
    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
    def __class_getitem__(cls, item):
        return cls
    @classmethod
    def model_validate(cls, d):
        return cls(**d)
def Field(default=None, *a, **k):
    return k.get("default_factory", lambda: default)() if "default_factory" in k else default
def field_validator(*a, **k):
    return lambda f: f
def model_validator(*a, **k):
    return lambda f: f
def field_serializer(*a, **k):
    return lambda f: f
def ConfigDict(**k):
    return k
class GetCoreSchemaHandler: pass
class GetJsonSchemaHandler: pass
class PrivateAttr:
    def __init__(self, *a, **k): pass
