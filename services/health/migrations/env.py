from services.health.models import Base
from shared.local.migrate import run_migrations

run_migrations(Base.metadata)
