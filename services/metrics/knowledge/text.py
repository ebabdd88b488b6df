"""Chinese text for the search index: jieba words, and the masks a resolved case is shown with.

Pure (jieba's dictionary loads once, lazily, on the first call).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from hotline.privacy import mask_text

# 18-digit resident identity numbers (the last may be X) and 15-digit bank cards or older ids.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
LONG_DIGITS = re.compile(r"(?<!\d)\d{12,19}(?!\d)")
# A name introduced as the caller's (我叫张三, 本人李四, 联系人王五), or a common family name and one or two
# characters after words that address a person in a reply (为张三丰办理, 联系李四): the family name stays.
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
            "曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石"
            "廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万"
            "钱严覃武戴莫孔向汤")
NAMED = re.compile(r"(我叫|本人|联系人|姓名[:：]?|我是)([\u4e00-\u9fa5]{2,3})")
ADDRESSED = re.compile(rf"(为|给|向|联系|致电|告知|答复|回访)([{SURNAMES}])([\u4e00-\u9fa5]{{1,2}})"
                       r"(?=[（(，,。、：:\s]|先生|女士|$)")
WORD = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
STOP = frozenset(("的 了 是 在 和 与 及 我 你 他 她 我们 你们 他们 有 也 就 都 而 但 "
                  "被 把 对 请 吗 呢 啊 吧 这 那 个 一个 没有 什么 怎么 如何 因为 "
                  "所以 已经 还是 可以 这个 那个 问题 情况 反映 希望 要求 相关 "
                  "部门 您好 谢谢").split())
MAX_CHARS = 3000


def mask(text: str) -> str:
    """Personal data masked in free text: phone numbers, identity and card numbers, names the
    caller introduced (the family name stays)."""
    text = mask_text(text)
    text = ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)[-1]}", text)
    text = LONG_DIGITS.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(0)[-4:], text)
    text = NAMED.sub(lambda m: m.group(1) + m.group(2)[0] + "*" * (len(m.group(2)) - 1), text)
    return ADDRESSED.sub(lambda m: m.group(1) + m.group(2) + "*" * len(m.group(3)), text)


@lru_cache(maxsize=1)
def _jieba() -> object:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str) -> list[str]:
    """jieba words (search mode: a long word and its shorter words, 停车费 -> 停车, 车费, 停车费; no
    HMM: new words are rare in tickets and HMM halves the speed), lower-cased, full-width
    folded, punctuation and stop words dropped."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower().replace("_x000d_", " ")
    jieba = _jieba()
    out = []
    for w in jieba.lcut_for_search(text, HMM=False):  # type: ignore[attr-defined]
        w = w.strip()
        if w and w not in STOP and WORD.search(w):
            out.append(w)
    return out


def query_words(text: str, limit: int = 32) -> list[str]:
    """The distinct words of a query, in order, at most ``limit`` (title first)."""
    seen: dict[str, None] = {}
    for w in words(text):
        if w not in seen:
            seen[w] = None
            if len(seen) >= limit:
                break
    return list(seen)
