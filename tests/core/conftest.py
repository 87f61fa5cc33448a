"""Helpers of the loop tests."""
import paddle


def tiny_model_and_optimizer():
    """A Linear(3, 2) after one Adam step (moments and a polynomial learning-rate schedule that moved):
    enough state for checkpoint round trips."""
    paddle.seed(0)
    model = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.PolynomialDecay(0.1, 10),
                                parameters=model.parameters())
    loss = model(paddle.ones([1, 3])).sum()
    loss.backward()
    opt.step()
    opt._learning_rate.step()
    return model, opt
