"""ORM tables ("model" here always means a database table). Re-exported for Alembic."""
from models.base import Base
from models.file import Dataset, File
from models.job import Job, JobEvent, JobKind, JobStatus, UsageRecord
from models.registry import Adapter, BaseModelEntry, Checkpoint
from models.user import ApiKey, User
from models.web_session import WebSession
from models.worker import Worker

__all__ = [
           "Adapter",
           "ApiKey",
           "Base",
           "BaseModelEntry",
           "Checkpoint",
           "Dataset",
           "File",
           "Job",
           "JobEvent",
           "JobKind",
           "JobStatus",
           "UsageRecord",
           "User",
           "WebSession",
           "Worker",
]
