"""The pyfunc model of a registered version, as code (MLflow's models from code).

``log_pyfunc_model`` logs this file with every version instead of a pickled ``RecsPyfunc``
object: MLflow copies the file into the version and runs it when the version is loaded, and the
model's state comes from the version's ``serving`` artifact (``RecsPyfunc.load_context``). No
pickle is written or read, so a version loads where pickle deserialization is switched off
(``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``).
"""

from mlflow.models import set_model

from recs_assets.core.serving.pyfunc import RecsPyfunc

set_model(RecsPyfunc())
