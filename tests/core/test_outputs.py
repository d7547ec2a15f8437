import pytest
import torch

from timetok.core.outputs import ClassifierOutput, ModelOutput


def test_a_classifier_output_is_a_model_output_whose_loss_waits_for_targets():
    out = ClassifierOutput(logits=torch.zeros(2, 3), embedding=torch.zeros(2, 4))
    assert isinstance(out, ModelOutput) and out.loss is None


def test_output_fields_are_named_not_positional():
    with pytest.raises(TypeError):
        ClassifierOutput(torch.zeros(2, 3), torch.zeros(2, 4))
