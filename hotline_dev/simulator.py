"""The city 12345 platform (市12345) simulator: realistic tickets (工单) on the city's topic.

    hotline simulate --count 1000 --rate 200          publish, paced, with a progress bar
    hotline simulate --count 3 --print                JSON lines on stdout (pipe into kcat)
    hotline simulate --count 100 --bad                also publish the malformed samples

What it produces follows the district report (see ``docs/city-format.md`` for the contract):

* ticket types: 投诉 72.72%, 求助 25.61%, the rest 咨询 / 建议 / 表扬;
* hotspots: 消费维权 ~13%, 物业管理 ~11%, 停车管理 ~8%, then 城市管理 / 市政设施, 噪声扰民,
  交通出行, 水电气热, 劳动保障 / 欠薪, 教育, 医疗卫生, 旅游 (more on statutory holidays),
  政务服务, 房屋安全, 高空抛物 / 养犬, and a few tickets no keyword of the list knows (生活求助);
* text that carries the routing service's keywords (``services/routing/data/responsibilities.json``)
  and addresses built from its gazetteer (``directory.json``): "瑞金路街道瑞金北村12栋3单元",
  "中华路118号"; a few addresses are vague and resolve to no street;
* ~60% of tickets carry the city's category, ~5% of callers call again (same phone, mostly the
  same address) so repeat detection has work, ~3% are 涉企 (enterprise), ~3% urgent.

Everything is deterministic for a ``seed`` and ``start``; ids embed both, so two runs started at
different seconds (or with different seeds) never share an id.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from google.protobuf import json_format

from hotline.directory import DIRECTORY_FILE
from hotline.settings import REPO_ROOT, Settings, get_settings
from hotline.v1 import ticket_pb2

__all__ = [
    "BAD_MESSAGE_REASONS",
    "TYPE_SHARES",
    "add_cli",
    "bad_messages",
    "generate",
    "publish",
    "to_json",
]

ROUTING_DATA = REPO_ROOT / "services" / "routing" / "data"
CONTENT_TYPE = b"application/json"

# 诉求类型 shares from the district report: 投诉 72.72%, 求助 25.61%, the remaining 1.67% split
# between 咨询, 建议 and 表扬.
TYPE_SHARES: dict[int, float] = {
    ticket_pb2.TICKET_TYPE_COMPLAINT: 72.72,
    ticket_pb2.TICKET_TYPE_HELP: 25.61,
    ticket_pb2.TICKET_TYPE_CONSULTATION: 0.90,
    ticket_pb2.TICKET_TYPE_SUGGESTION: 0.50,
    ticket_pb2.TICKET_TYPE_PRAISE: 0.27,
}
CATEGORY_SHARE = 0.60  # tickets that carry the city's category
ALIAS_SHARE = 0.10  # of those, the city's own name for the category (an alias in the list)
REPEAT_SHARE = 0.05  # callers who call again
ENTERPRISE_SHARE = 0.03  # 涉企诉求
URGENT_SHARE = 0.03  # 紧急件
ANONYMOUS_SHARE = 0.06
VAGUE_ADDRESS_SHARE = 0.03  # addresses that name no place of the gazetteer
STREET_FIELD_SHARE = 0.35  # tickets where the city also fills in the street
HOLIDAY_TOURISM_BOOST = 4.0
MEAN_GAP_SECONDS = 6.0  # mean time between two received tickets (non-live)
MAX_DISPATCH_SECONDS = 300  # dispatched_at follows received_at within this (the 5-minute dispatch rule)

# reason the platform gives each malformed sample (the dlq_reason header)
BAD_MESSAGE_REASONS: dict[str, str] = {
    "not_json": "malformed_json",
    "truncated_json": "malformed_json",
    "empty_value": "malformed_json",
    "json_array": "schema",
    "ticket_type_banana": "schema",
    "content_is_object": "schema",
    "unknown_enum_number": "schema",
    "bad_timestamp": "schema",
    "bad_ticket_id": "schema",
    "time_limit_out_of_range": "schema",
    "missing_city_ticket_id": "missing_field",
    "missing_content": "missing_field",
    "missing_received_at": "missing_field",
    "oversize": "oversize",
}


# --------------------------------------------------------------------------------------------
# Templates. Placeholders: {addr} full address, {place} the road or area in it, {street} its
# street office, {shop} {store} {training} {company} {school} {hospital} {scenic} names, {amount} {left}
# {small} {wage} money, {n} {days} {months} {hour} {hours} {workers} {bus} {age} numbers.
# Every text carries keywords of its responsibility item and none that would outvote them.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """One kind of demand. ``problems``, ``urgent`` and ``enterprise`` are (title, text) pairs."""

    key: str
    category: str  # responsibility category ("" = no list item covers it)
    weight: float
    place: str  # home | road | shop | work | site
    subject: str  # short noun phrase with a keyword, for consult / suggestion / praise titles
    problems: tuple[tuple[str, str], ...]
    consults: tuple[str, ...]
    suggests: tuple[str, ...]
    urgent: tuple[tuple[str, str], ...] = ()
    enterprise: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = ()  # the city's own names for this category
    tags: tuple[str, ...] = ()


TOPICS: tuple[Topic, ...] = (
    # 消费维权 ~13.2%
    Topic(
        "prepaid_card", "消费维权", 5.0, "shop", "预付卡退款",
        (
            ("会员卡余额无法使用,商家疑似跑路",
             "其于{months}个月前在{addr}的{shop}办理会员卡,充值{amount}元,近日该店突然关门,疑似跑路,卡内余额{left}元无法使用"),
            ("预付卡商家闭店无法退卡",
             "{shop}(位于{addr})以店面装修为由停业已{days}天,电话无人接听,办卡时充值的{amount}元无法退卡"),
            ("充值卡商家拒绝退款",
             "在{addr}的{shop}办理充值卡后商家更换经营者,新老板不认可原预付卡,余额{left}元拒绝退款"),
            ("办卡后服务缩水要求退卡被拒",
             "{shop}工作人员反复推销办卡,来电人充值{amount}元后发现服务缩水,要求退卡被拒"),
        ),
        ("预付卡商家闭店后如何维权、向哪个部门申请退款", "办理会员卡时协议写明“概不退卡”,该条款是否有效"),
        ("建议加强对预付卡经营者的监管,推行预付卡资金存管,防止商家跑路",),
        aliases=("市场监管", "商贸旅游"),
    ),
    Topic(
        "goods_quality", "消费维权", 4.0, "shop", "商品质量",
        (
            ("商品质量问题商家拒绝退货", "其在{addr}的{store}购买的商品使用{days}天即出现质量问题,商家拒绝退货"),
            ("商家价格欺诈", "{addr}的{store}商品标价与结账价格不一致,多收{small}元,涉嫌价格欺诈"),
            ("农贸市场缺斤少两", "在{addr}的农贸市场买菜,回家复秤发现缺斤少两,一斤少了近二两"),
            ("商家虚假宣传", "{store}虚假宣传“全场一折”,实际商品均按原价销售,涉嫌欺诈消费者"),
            ("商家拒开发票", "在{addr}的{store}消费{amount}元,商家以各种理由拒绝开具发票"),
            ("商家销售假货拒绝退货", "在{store}购买的品牌运动鞋经鉴定为假货,商家拒绝退货退款"),
        ),
        ("购买的商品出现质量问题,超过七天后还能否要求商家退货", "商家拒绝开具发票应向哪个部门反映"),
        ("建议市场监管部门加强对农贸市场电子秤的检查,杜绝缺斤少两",),
        enterprise=(("企业采购设备质量问题", "{company}反映其采购的一批办公设备存在质量问题,供应商拒绝退货"),),
        aliases=("市场监管",),
    ),
    Topic(
        "online_shopping", "消费维权", 2.5, "home", "网购快递",
        (
            ("快递放驿站不送货上门",
             "其网购的商品被快递员直接放在{place}附近的驿站,未经同意不送货上门,驿站还要收取保管费"),
            ("直播带货商品与宣传不符", "通过直播带货购买的保健品与宣传不符,商家拒绝退货"),
            ("外卖食品有异物", "在{addr}点的外卖中吃出异物,商家态度恶劣,平台客服推诿"),
            ("网购家电破损互相推诿", "网购的家电送到{addr}后发现外包装破损,快递公司和商家互相推诿"),
        ),
        ("网购商品发现问题,商家在外地,应向哪里投诉", "快递柜超时收取保管费是否合规"),
        ("建议规范快递末端配送,快递员应按约定送货上门",),
    ),
    Topic(
        "training_refund", "消费维权", 1.7, "shop", "培训退费",
        (
            ("培训机构停课拒不退费",
             "其为孩子在{addr}的{training}报名培训班,一次性缴纳{amount}元,现机构停课,剩余{n}课时要求退费未果"),
            ("校外培训机构突然停业", "{training}(位于{addr})突然停业,多名家长预交的培训费无法退费"),
            ("培训班退费难", "孩子试听后不满意,{training}以已开课为由拒绝按剩余课时退费"),
        ),
        ("校外培训机构一次性收取超过三个月的费用是否合规,如何申请退费",),
        ("建议对校外培训机构预收费实行资金监管",),
    ),
    # 物业管理 ~11.4%
    Topic(
        "property_service", "物业管理", 8.0, "home", "小区物业服务",
        (
            ("小区电梯故障频发物业维修不及时",
             "{addr}所在小区电梯近{days}天内多次故障停运,老人上下楼困难,物业维修不及时"),
            ("物业费上涨未经业主同意", "所住{addr}小区物业擅自上调物业费,未经业主大会表决,业主意见很大"),
            ("小区公共收益不公开", "{addr}小区物业公司广告、场地出租等公共收益多年未向业主公示"),
            ("物业保安夜间不在岗", "{addr}小区夜间保安不在岗,外来人员随意进出,近期发生多起入室盗窃"),
            ("小区绿化无人管理", "{addr}小区物业不作为,绿化带杂草丛生、蚊虫很多,多次找物业无果"),
            ("业委会换届迟迟不启动", "{addr}小区业委会换届选举迟迟不启动,业主要求街道指导"),
        ),
        ("小区业委会如何成立、需要哪些条件", "物业合同到期后业主如何选聘新的物业公司"),
        ("建议街道加强对小区物业服务质量的考核,定期公示物业收支",),
        urgent=(("小区电梯困人", "{addr}小区电梯突发故障困人,物业值班人员无法联系,情况紧急"),),
        aliases=("住房保障",),
    ),
    Topic(
        "old_housing", "物业管理", 3.4, "home", "老旧小区维修",
        (
            ("顶楼漏水申请维修资金难",
             "{addr}顶楼屋面漏水,雨天家中多处渗水,申请使用维修资金手续复杂,迟迟无法维修"),
            ("老旧小区外墙脱落", "{addr}老旧小区外墙瓷砖脱落,存在安全隐患"),
            ("楼道灯损坏无人维修", "{addr}楼道灯损坏、墙皮脱落已有{months}个月,该楼为老旧小区,无物业管理"),
            ("楼上漏水协商无果", "{addr}楼上住户厨房管道漏水至其家中,协商无果"),
        ),
        ("住宅专项维修资金如何申请使用,需要多少业主签字",),
        ("建议将{place}一带的老旧小区纳入改造计划,加装电梯、更换楼道管线",),
        urgent=(("外墙瓷砖坠落", "{addr}外墙大面积空鼓,已有瓷砖坠落,楼下为人行通道,情况紧急"),),
    ),
    # 停车管理 ~8.2%
    Topic(
        "parking", "停车管理", 6.0, "road", "停车管理",
        (
            ("车辆违停堵塞消防通道", "{addr}附近经常有车辆违停,占用消防通道,影响通行"),
            ("停车场乱收费", "{addr}的停车场收费标准未公示,停车{hours}小时被收取{small}元"),
            ("路边停车收费不规范", "{place}路边停车位收费员不出具票据,随意收费"),
            ("车位被长期占用", "{addr}小区内外来车辆长期占用车位,业主无处停车"),
            ("夜间乱停车", "{place}沿线晚间乱停车现象严重,车辆双排停放"),
        ),
        ("{street}范围内哪些路段可以夜间免费停车", "新能源车在公共停车场是否有停车优惠"),
        ("建议在{place}周边增设公共停车场,缓解停车难",),
    ),
    Topic(
        "bicycles", "停车管理", 2.2, "road", "电动车停放",
        (
            ("共享单车乱停放", "{addr}附近共享单车大量堆积,占据盲道,行人通行不便"),
            ("小区缺少电动车充电桩", "{addr}小区没有电动车充电桩,居民只能飞线充电,存在安全隐患"),
            ("非机动车停放无序", "{place}路口自行车、电动车停放无序,早晚高峰影响通行"),
        ),
        ("小区安装电动车充电桩需要向哪个部门申请",),
        ("建议在{place}增设非机动车停放点和充电桩",),
    ),
    # 城市管理 / 市政设施 ~17.5%
    Topic(
        "street_vending", "城市管理", 5.0, "road", "占道经营",
        (
            ("流动摊贩占道经营", "{addr}附近流动摊贩占道经营,早晚高峰影响行人和车辆通行"),
            ("违章搭建阳光房", "{addr}一楼住户违章搭建阳光房,占用公共绿地"),
            ("沿街商铺店外经营", "{addr}沿街商铺店外经营,桌椅摆放到人行道上"),
            ("广告牌存在安全隐患", "{addr}一商户楼顶广告牌松动,遇大风有坠落风险"),
            ("楼顶疑似违建", "{addr}楼顶有人私自乱搭建筑物,疑似违建"),
        ),
        ("自家院子搭建雨棚是否属于违建,需要办理什么手续",),
        ("建议在{place}设置便民疏导点,规范摊贩经营",),
        urgent=(("广告牌摇摇欲坠", "{addr}一商户广告牌被大风吹得摇摇欲坠,下方就是人行通道,情况紧急"),),
        enterprise=(("门店门前被占道经营", "{company}门店门前被流动摊贩长期占道经营,影响正常营业"),),
        aliases=("城乡建设", "城市建设"),
    ),
    Topic(
        "sanitation", "城市管理", 4.0, "road", "垃圾清运",
        (
            ("垃圾桶满溢清运不及时", "{addr}的垃圾桶满溢,已{days}天无人清运,气味难闻"),
            ("公厕脏乱无人保洁", "{place}公厕长期脏乱,无人保洁"),
            ("建筑垃圾乱堆放", "{addr}附近建筑垃圾随意堆放,无人清运"),
            ("道路保洁不到位", "{place}沿线环卫工人清扫不到位,落叶垃圾堆积"),
        ),
        ("大件家具和装修垃圾应如何预约清运",),
        ("建议在{place}增设分类垃圾桶",),
        aliases=("市容环境",),
    ),
    Topic(
        "municipal", "城市管理", 7.0, "road", "路灯井盖维修",
        (
            ("路灯不亮", "{place}一段路灯已连续{days}天不亮,夜间行人出行不安全"),
            ("窨井盖破损", "{addr}附近人行道上窨井盖破损松动,存在安全隐患"),
            ("道路破损坑洼", "{place}道路破损,坑洼不平,行人和车辆经过容易摔倒"),
            ("下水道堵塞", "{addr}门前下水道堵塞,污水外溢"),
            ("雨后路面积水", "每逢下雨{addr}附近路段积水严重,最深处没过脚踝"),
        ),
        ("发现路灯、井盖损坏应该向哪个部门报修",),
        ("建议对{place}破损的人行道进行整体翻修",),
        urgent=(
            ("井盖缺失", "{addr}附近路面井盖缺失,已有行人险些跌落,情况紧急"),
            ("窨井冒水路面积水", "{place}下水道窨井冒水,路面大面积积水,车辆无法通行"),
        ),
        enterprise=(("企业门前道路破损", "{company}门前{place}道路破损严重,坑洼不平,货车进出困难,影响企业经营"),),
        aliases=("城市建设",),
    ),
    Topic(
        "greenery", "城市管理", 1.5, "road", "树木修剪",
        (
            ("楼前树木遮挡采光", "{addr}楼前树木过高,遮挡低层住户采光,要求修剪"),
            ("绿化带缺乏养护", "{place}绿化带内杂草丛生,缺乏养护"),
            ("行道树需修剪", "{place}行道树枝干伸向电线,大风天存在隐患,要求修剪"),
        ),
        ("楼下树木需要修剪,应向哪个部门申请",),
        ("建议在{place}补种绿化带,并定期修剪树木",),
    ),
    # 环境保护 ~11%
    Topic(
        "noise", "环境保护", 8.0, "home", "噪声扰民",
        (
            ("夜间施工噪音扰民", "{addr}附近工地夜间{hour}点后仍在施工,噪音很大,严重影响休息"),
            ("广场舞噪声扰民", "{addr}附近广场舞音响声音过大,每晚持续到{hour}点,扰民严重"),
            ("商铺高音喇叭噪音扰民", "{addr}沿街商铺用高音喇叭促销,噪声扰民"),
            ("空调外机噪声扰民", "{addr}楼下餐馆空调外机夜间噪音大,无法入睡"),
            ("装修施工噪音扰民", "{addr}楼上住户装修施工,周末早上七点就开始,噪音扰民"),
        ),
        ("夜间施工需要办理什么许可,几点以后禁止施工",),
        ("建议对{place}周边广场舞的活动时间和音量进行规范",),
        aliases=("环境保护",),
    ),
    Topic(
        "pollution", "环境保护", 3.0, "shop", "油烟污染",
        (
            ("餐饮油烟扰民", "{addr}一楼餐饮店油烟直排,未安装净化设施,楼上住户无法开窗"),
            ("工地扬尘污染", "{addr}附近工地未覆盖裸土,扬尘污染严重"),
            ("河道黑臭", "{place}附近河道黑臭,夏季异味明显"),
            ("汽修店废气排放", "{addr}的汽修店喷漆废气直接排放,气味刺鼻"),
        ),
        ("餐饮店油烟排放有什么标准",),
        ("建议对{place}沿线餐饮店的油烟净化设施进行集中检查",),
    ),
    # 交通出行 ~5%
    Topic(
        "transport", "交通出行", 5.0, "road", "公交出行",
        (
            ("公交班次间隔过长", "{bus}路公交早高峰班次间隔过长,{place}站台候车人多"),
            ("信号灯时长不合理", "{place}路口信号灯时长设置不合理,行人绿灯时间太短"),
            ("路口交通拥堵", "{place}早晚高峰交通拥堵严重,希望交警部门疏导"),
            ("公交站台缺少遮雨棚", "{place}公交站台没有遮雨棚和座椅,老人候车不便"),
            ("出租车拒载绕路", "在{place}打车时遇出租车拒载、绕路"),
        ),
        ("{bus}路公交首末班时间及线路走向",),
        ("建议增设公交线路,方便{place}一带居民到地铁站换乘",),
        aliases=("交通运输",),
    ),
    # 水电气热 ~6.5%
    Topic(
        "water", "水电气热", 3.0, "home", "停水",
        (
            ("停水未提前通知", "{addr}从早上开始停水,事先未接到任何通知,至今未恢复"),
            ("自来水水压低", "{addr}高层住户自来水水压不足,用水高峰时几乎没水"),
            ("自来水水质发黄", "{addr}家中自来水发黄,怀疑水质有问题"),
        ),
        ("水费阶梯价格如何计算,多人口家庭如何申请",),
        ("建议停水检修时提前在小区张贴通知并短信告知",),
        urgent=(("水管爆裂", "{addr}附近地下水管爆裂,大量自来水涌出,情况紧急"),),
        enterprise=(("园区停水影响生产", "{company}所在的{addr}园区停水已{days}天,影响企业生产"),),
        aliases=("公共服务",),
    ),
    Topic(
        "power", "水电气热", 2.0, "home", "停电",
        (
            ("频繁停电", "{addr}近一周频繁停电,每次持续{hours}小时,影响正常生活"),
            ("电压不稳", "{addr}晚间电压不稳,家用电器无法正常使用"),
            ("电费异常", "{addr}本月电费比往月高出一倍多,怀疑电表有问题"),
        ),
        ("新装电表和峰谷电价如何申请",),
        ("建议供电部门计划停电时提前通知到户",),
        urgent=(("整栋楼突然停电", "{addr}整栋楼突然停电,家中有需要用制氧机的老人,情况紧急"),),
        enterprise=(("企业频繁停电影响生产", "{company}位于{addr}的生产车间近期频繁停电,设备停机,影响正常生产"),),
        aliases=("公共服务",),
    ),
    Topic(
        "gas", "水电气热", 1.5, "home", "燃气",
        (
            ("天然气开通缓慢", "{addr}申请天然气开通已{days}天,燃气公司一直未上门安装"),
            ("燃气费异常", "{addr}燃气表读数异常,燃气费明显偏高"),
        ),
        ("燃气公司上门安全检查是否需要付费",),
        ("建议燃气公司对{place}一带的老旧燃气管道进行排查,防止漏气",),
        urgent=(
            ("疑似天然气泄漏", "{addr}楼道内闻到浓烈燃气味,疑似天然气管道漏气,情况紧急"),
            ("燃气管道被挖断", "{addr}室外燃气管道被挖断,正在漏气,情况紧急"),
        ),
    ),
    # 社会保障与就业 ~9.5%
    Topic(
        "wages", "社会保障与就业", 5.0, "work", "欠薪",
        (
            ("农民工工资被拖欠", "其在{addr}务工,包工头拖欠{workers}名农民工工资共计{wage}元"),
            ("公司拖欠工资", "其所在的{company}已连续{months}个月拖欠工资,公司负责人避而不见"),
            ("未签劳动合同被辞退", "{company}未与员工签订劳动合同,现无故辞退且不给补偿"),
            ("加班不付费不缴社保", "{company}长期要求员工加班,不支付加班费,也未缴纳社保"),
        ),
        ("被公司辞退后如何申请劳动仲裁,需要准备哪些材料", "灵活就业人员社保如何缴纳"),
        ("建议加大对{place}周边工地农民工工资支付情况的检查",),
        enterprise=(("企业社保补贴申请", "{company}咨询招用就业困难人员的社保补贴如何申请,多次来电未得到明确答复"),),
        aliases=("劳动和社会保障",),
    ),
    Topic(
        "welfare", "社会保障与就业", 3.0, "home", "养老补贴",
        (
            ("低保申请迟迟未批", "{addr}一户家庭因病致贫,生活困难,申请低保迟迟未获批准"),
            ("独居老年人需要养老服务", "家住{addr},家中{age}岁独居老年人行动不便,希望社区提供上门养老服务"),
            ("残疾人补贴未发放", "其为残疾人,残疾人补贴已{months}个月未发放"),
        ),
        ("老年人高龄补贴如何申请,需要什么材料", "低保申请条件和流程"),
        ("建议在{place}附近增设社区养老服务站和老年人助餐点",),
        aliases=("劳动和社会保障",),
    ),
    Topic(
        "medical_insurance", "社会保障与就业", 1.5, "home", "医保报销",
        (
            ("医保报销比例有异议", "在{hospital}住院后办理医保报销,报销比例与政策不符"),
            ("异地就医报销难", "其异地就医备案后回来报销,被告知材料不全,多次往返仍未办好"),
            ("医保卡无法使用", "在{hospital}附近药店刷医保卡时系统显示异常,无法使用医保"),
        ),
        ("新生儿如何办理医疗保险", "门诊慢特病医保报销比例是多少"),
        ("建议简化医保报销材料,推行线上办理",),
    ),
    # 教育卫生 ~6%
    Topic(
        "education", "教育卫生", 3.5, "home", "入学",
        (
            ("学区学位不足无法入学", "孩子今年{child}岁,户籍在{addr},被告知学区内学位不足,无法入学"),
            ("老师推销教辅资料", "{school}老师向学生推销教辅资料"),
            ("幼儿园入园难", "{addr}附近的幼儿园名额紧张,孩子无法就近入园"),
            ("学校放学过早接送难", "{school}放学时间过早,双职工家庭接送不便,希望学校提供课后服务"),
        ),
        ("外地户籍孩子在本区入学需要哪些材料", "今年小学入学报名时间和学区划分"),
        ("建议{school}延长课后服务时间,方便学生家长",),
        aliases=("教育文体",),
    ),
    Topic(
        "health", "教育卫生", 2.5, "shop", "医院服务",
        (
            ("医院服务态度差", "在{hospital}就诊时医生态度冷漠,开具的检查项目过多"),
            ("诊所疑似无证行医", "{addr}有一家诊所疑似无证行医"),
            ("疫苗接种预约难", "{hospital}的疫苗接种预约排到了{months}个月后"),
            ("医院挂号难", "{hospital}挂号难、候诊时间过长,老人排队{hours}小时"),
        ),
        ("成人流感疫苗在哪些社区卫生服务中心可以接种",),
        ("建议{hospital}为老年人就医开设绿色通道",),
        aliases=("卫生计生",),
    ),
    # 文旅与政务服务 ~7%
    Topic(
        "tourism", "文旅与政务服务", 2.5, "site", "景区旅游",
        (
            ("景区购物遭遇宰客",
             "其作为外地游客在{scenic}游玩,在{addr}附近一商铺购买纪念品,结账金额远高于标价"),
            ("导游强制购物", "在{scenic}参加一日游,导游强制游客进店购物"),
            ("景区门票预约系统故障", "{scenic}门票预约系统故障,游客无法入园,现场排队混乱"),
            ("游船工作人员态度差", "乘坐秦淮河游船时工作人员态度恶劣,游客中有老人小孩无人引导"),
            ("景区餐馆未明码标价", "在{scenic}附近的餐馆用餐,菜单未明码标价,结账时被多收{small}元,游客维权无门"),
        ),
        ("{scenic}节假日开放时间和门票优惠政策", "游客在景区丢失物品如何寻找"),
        ("建议节假日在{scenic}增加游客服务点和导览标识",),
        aliases=("旅游",),
        tags=("旅游",),
    ),
    Topic(
        "government_service", "文旅与政务服务", 3.0, "home", "营业执照办理",
        (
            ("营业执照办理慢", "在区政务大厅办理营业执照变更,材料齐全但{days}个工作日仍未审批"),
            ("政务大厅窗口服务差", "政务大厅窗口工作人员让其反复补充材料,多次往返仍未办成"),
            ("户口迁移手续繁琐", "为孩子办理户口迁入,相关部门相互推诿"),
        ),
        ("个体工商户营业执照如何网上办理", "新生儿户口登记需要哪些材料"),
        ("建议政务大厅增设午间和周末办证窗口",),
        enterprise=(
            ("企业营业执照变更未审批", "{company}在政务大厅申请营业执照变更已{days}天未审批,影响企业招投标"),
            ("企业证照审批拖延", "{company}的证照审批材料已齐全,窗口以系统故障为由拖延办理"),
        ),
    ),
    Topic(
        "housing_safety", "城市管理", 1.5, "home", "房屋安全",
        (
            ("房屋出现裂缝疑似危房", "{addr}房屋墙体出现多条裂缝,怀疑是危房,要求进行房屋安全鉴定"),
            ("拆迁安置房交付推迟", "其家位于{place}拆迁范围内,安置房交付时间一再推迟"),
            ("征收补偿款未到位", "{place}片区房屋征收补偿款至今未全额发放"),
        ),
        ("房屋安全鉴定如何申请,费用由谁承担",),
        ("建议对{place}一带的老旧房屋开展房屋安全排查",),
        urgent=(("承重墙开裂疑似危房", "{addr}房屋承重墙突然开裂并有掉渣,疑似危房,住户不敢入住,情况紧急"),),
    ),
    Topic(
        "neighbours", "城市管理", 1.2, "home", "高空抛物与文明养犬",
        (
            ("高空抛物", "{addr}楼上住户经常高空抛物,楼下行人存在危险"),
            ("邻居养犬不拴绳", "{addr}邻居饲养大型犬不拴绳,多次吓到孩子"),
        ),
        ("养犬登记在哪里办理",),
        ("建议社区加强文明养犬宣传",),
    ),
    # no item of the list covers these: classifier, street or manual dispatch
    Topic(
        "unlisted", "", 1.5, "home", "生活求助",
        (
            ("捡到钱包寻找失主", "在{addr}附近捡到一个钱包,内有现金和银行卡,希望帮助联系失主"),
            ("家中老人走失", "家住{addr},家中老人今早外出后一直未归,家属十分着急"),
            ("对上次答复不认可", "来电人对此前反映事项的答复不认可,认为没有实质进展,要求重新核实"),
        ),
        ("捡到他人物品应交到哪里",),
        ("建议在{place}设置便民信息公告栏",),
    ),
)

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强文婷玉兰海燕红"
    "梅晓东子涵浩然欣怡宇轩梓萱雨桐俊杰佳怡"
)
PHONE_PREFIXES = tuple(f"13{i}" for i in range(10)) + tuple(f"15{i}" for i in (0, 1, 2, 3, 5, 6, 7, 8, 9)) + tuple(
    f"18{i}" for i in range(10)
)
BRANDS = ("悦美", "健康派", "优品", "乐享", "金鼎", "星辰", "阳光", "百盛", "佳佳", "鑫源", "蓝海", "一诺")
SHOP_TYPES = ("美发店", "健身房", "洗车店", "美容院", "游泳馆", "烘焙店", "养生馆", "儿童乐园")  # prepaid cards
STORE_TYPES = ("超市", "手机店", "服装店", "家电卖场", "母婴店", "鞋店", "数码城")  # goods
TRAININGS = ("教育培训中心", "艺术培训学校", "英语培训机构", "体育培训馆", "编程培训班")
COMPANY_PREFIXES = ("金陵", "白鹭", "钟山", "聚源", "华信", "恒达", "博远", "瑞丰", "云帆", "天诚", "中恒", "汇通")
COMPANY_TRADES = (
    "科技", "贸易", "餐饮管理", "建筑工程", "文化传媒", "物流", "电子商务", "信息技术",
    "酒店管理", "机械制造",
)
WORK_SITES = ("在建工地", "写字楼", "产业园", "厂房", "商业广场项目工地")
SCHOOLS = ("区第一中心小学", "实验小学", "育英小学", "明德中学", "光明幼儿园", "育才初级中学")
HOSPITALS = ("区中医院", "区妇幼保健院", "社区卫生服务中心", "区第一人民医院", "区口腔医院")
SCENIC = ("夫子庙景区", "中华门城堡景区", "老门东历史街区", "瞻园景区", "江南贡院景区", "秦淮河画舫码头")
VAGUE_ADDRESSES = ("", "来电人未提供具体地址", "不愿透露具体位置", "详见诉求内容", "本区")
CHANNELS = (("phone", 78.0), ("web", 8.0), ("app", 8.0), ("wechat", 6.0))
TIME_LIMITS = ((0, 85.0), (3, 5.0), (5, 4.0), (7, 3.0), (10, 2.0), (15, 1.0))

COMPLAINT_OPENERS = ("来电人反映:", "市民来电反映:", "诉求人称:", "来电人投诉:", "来电人反映,")
COMPLAINT_ASKS = (
    "要求相关部门尽快处理。",
    "希望相关部门核实处理并给予答复。",
    "请相关部门依法查处。",
    "要求尽快解决,并回复处理结果。",
    "希望有关部门尽快协调解决。",
)
HELP_ASKS = (
    "希望相关部门帮助协调解决。", "请求尽快派人处理。", "希望能帮忙联系相关单位处理。",
    "恳请相关部门给予帮助。",
)
PRAISE_WHO = ("{street}工作人员", "{street}社区网格员", "相关部门工作人员", "{street}城管队员")
PRAISE_HOW = (
    "接到工单后当天就上门查看,问题很快得到解决",
    "多次上门沟通协调,耐心细致,问题已圆满解决",
    "处理及时、态度热情,给予了很大帮助",
)


@dataclass
class _Street:
    unit_id: str
    name: str  # 街道 office name
    roads: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)  # residential compounds (小区) and areas (片区)
    compounds: list[str] = field(default_factory=list)  # residential compounds (小区)


@dataclass
class _Caller:
    """An earlier call, for callers who call again."""

    caller: ticket_pb2.Caller
    topic: Topic
    company: str
    address: str
    place: str
    street: _Street | None
    street_field: str


@dataclass(frozen=True)
class _Meta:
    """What the generator meant, for tests: the topic and the street the address lies in."""

    topic: str
    category: str
    street_id: str | None


@lru_cache
def _gazetteer(data_dir: Path = ROUTING_DATA) -> tuple[_Street, ...]:
    directory = json.loads((DIRECTORY_FILE).read_text("utf-8"))
    streets = {u["unit_id"]: _Street(u["unit_id"], u["name"]) for u in directory["units"]
               if u["unit_type"] == "UNIT_TYPE_STREET"}
    for place in directory["gazetteer"]:
        street = streets[place["street"]]
        if place.get("kind") == "road":
            street.roads.append(place["name"])
        elif place.get("kind") == "compound":
            street.compounds.append(place["name"])
            street.areas.append(place["name"])
        elif place.get("kind") == "area":
            street.areas.append(place["name"])
    for street in streets.values():
        if not street.roads:
            street.roads = list(street.areas) or [street.name]
    listing = json.loads((data_dir / "responsibilities.json").read_text("utf-8"))
    categories = {r["category"] for r in listing["responsibilities"]}
    aliases = listing.get("category_aliases", {})
    for topic in TOPICS:
        if topic.category and topic.category not in categories:
            raise ValueError(f"simulator topic {topic.key}: category {topic.category!r} is not in the list")
        for alias in topic.aliases:
            if aliases.get(alias) != topic.category and alias != topic.category:
                raise ValueError(f"simulator topic {topic.key}: alias {alias!r} does not map to {topic.category}")
    return tuple(sorted(streets.values(), key=lambda s: s.unit_id))


class _Weighted:
    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


def _below(rng: random.Random, n: int) -> int:
    """0 <= i < n; faster than randrange, and as deterministic."""
    return int(rng.random() * n)


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


def _pick(rng: random.Random, options: Sequence[Any]) -> Any:
    return options[int(rng.random() * len(options))]


def _holiday(day: date) -> bool:
    """A statutory holiday (not a plain weekend), per the Chinese calendar if it knows the year."""
    try:
        import chinese_calendar

        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        return bool(on_holiday and name)
    except Exception:  # year outside the calendar's range, or the package missing
        return False


def _run_token(seed: int, start_local: datetime) -> str:
    seed_part = f"{seed:03d}" if 0 <= seed < 10**9 else hashlib.blake2s(str(seed).encode(), digest_size=5).hexdigest()
    return f"{start_local:%Y%m%d%H%M%S}{seed_part}"


def to_json(ticket: ticket_pb2.CityTicket) -> bytes:
    """The wire value: compact protobuf JSON mapping (camelCase names, enums by name, RFC 3339)."""
    return orjson.dumps(json_format.MessageToDict(ticket))


def _round_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def generate(count: int, seed: int = 0, start: datetime | None = None) -> Iterator[ticket_pb2.CityTicket]:
    """``count`` realistic city tickets, deterministic for ``seed`` and ``start``.

    Ids are ``C<yyyymmddHHMMSS of start, local time><seed:03d><sequence:07d>``.
    ``received_at`` grows from ``start`` by small random gaps; ``dispatched_at`` follows within
    a few minutes (the 5-minute dispatch rule). Without ``start`` the run ends before now
    (:func:`default_start`): intake refuses tickets received in the future."""
    for ticket, _ in _generate(count, seed, start):
        yield ticket


def default_start(count: int, now: datetime) -> datetime:
    """A start from which ``count`` tickets all lie before ``now``: the run's expected span plus
    six standard deviations of it, plus the longest dispatch delay."""
    span = MEAN_GAP_SECONDS * (count + 6 * count**0.5) + MAX_DISPATCH_SECONDS
    return now - timedelta(seconds=span)


def _generate(count: int, seed: int, start: datetime | None) -> Iterator[tuple[ticket_pb2.CityTicket, _Meta]]:
    streets = _gazetteer()
    rng = random.Random(seed)
    tz = ZoneInfo(get_settings().timezone)
    if start is None:
        start = default_start(count, datetime.now(UTC))
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = _round_ms(start)
    token = _run_token(seed, start.astimezone(tz))
    types = _Weighted(list(TYPE_SHARES), list(TYPE_SHARES.values()))
    normal_topics = _Weighted(TOPICS, [t.weight for t in TOPICS])
    holiday_topics = _Weighted(TOPICS, [t.weight * (HOLIDAY_TOURISM_BOOST if "旅游" in t.tags else 1) for t in TOPICS])
    urgent_topics = _Weighted([t for t in TOPICS if t.urgent], [t.weight for t in TOPICS if t.urgent])
    enterprise_topics = _Weighted([t for t in TOPICS if t.enterprise], [t.weight for t in TOPICS if t.enterprise])
    channels = _Weighted([c for c, _ in CHANNELS], [w for _, w in CHANNELS])
    limits = _Weighted([d for d, _ in TIME_LIMITS], [w for _, w in TIME_LIMITS])
    tourism_street = next((s for s in streets if s.name == "夫子庙街道"), None)
    history: list[_Caller] = []
    holidays: dict[date, bool] = {}
    received = start

    for seq in range(1, count + 1):
        received = _round_ms(received + timedelta(seconds=rng.expovariate(1 / MEAN_GAP_SECONDS)))
        day = received.astimezone(tz).date()
        if day not in holidays:
            holidays[day] = _holiday(day)
        urgent = rng.random() < URGENT_SHARE
        enterprise = not urgent and rng.random() < ENTERPRISE_SHARE
        repeat = history and not urgent and not enterprise and rng.random() < REPEAT_SHARE
        ticket_type = types.pick(rng)

        if repeat:
            earlier = history[_below(rng, len(history))]
            topic, caller, company = earlier.topic, earlier.caller, earlier.company
            same_place = rng.random() < 0.8
            if ticket_type not in (ticket_pb2.TICKET_TYPE_COMPLAINT, ticket_pb2.TICKET_TYPE_HELP):
                ticket_type = ticket_pb2.TICKET_TYPE_COMPLAINT
        else:
            if urgent:
                topic = urgent_topics.pick(rng)
            elif enterprise:
                topic = enterprise_topics.pick(rng)
            else:
                topic = (holiday_topics if holidays[day] else normal_topics).pick(rng)
            caller, company = _caller(rng, enterprise), _company(rng)
            same_place = False
        if urgent and ticket_type not in (ticket_pb2.TICKET_TYPE_COMPLAINT, ticket_pb2.TICKET_TYPE_HELP):
            ticket_type = ticket_pb2.TICKET_TYPE_HELP

        if same_place:
            address, place, street, street_name = earlier.address, earlier.place, earlier.street, earlier.street_field
        else:
            street = tourism_street if topic.place == "site" and tourism_street and rng.random() < 0.7 else None
            street = street or streets[_below(rng, len(streets))]
            address, place = _address(rng, street, topic.place)
            street_name = street.name if rng.random() < STREET_FIELD_SHARE else ""

        values = _values(rng, address, place, street.name if street else "本街道", company)
        title, content = _text(rng, topic, ticket_type, values, urgent, enterprise, bool(repeat))
        if not same_place and rng.random() < VAGUE_ADDRESS_SHARE:
            # the caller names the place in the text only: the address field says nothing useful
            address = VAGUE_ADDRESSES[_below(rng, len(VAGUE_ADDRESSES))]
            if rng.random() < 0.4:
                street_name = street.name if street else ""
            else:
                street, street_name = None, ""

        tags = list(topic.tags)
        if enterprise or caller.enterprise:
            tags.append("涉企")
        category = ""
        if topic.category and rng.random() < CATEGORY_SHARE:
            category = topic.category
            if topic.aliases and rng.random() < ALIAS_SHARE:
                category = topic.aliases[_below(rng, len(topic.aliases))]
        time_limit = limits.pick(rng)
        if ticket_type == ticket_pb2.TICKET_TYPE_CONSULTATION:
            time_limit = _pick(rng, (0, 2))
        elif urgent:
            time_limit = 1
        dispatch_delay = rng.uniform(20, 120) if urgent else rng.uniform(60, MAX_DISPATCH_SECONDS)

        ticket = ticket_pb2.CityTicket(
            city_ticket_id=f"C{token}{seq:07d}",
            ticket_type=ticket_type,
            title=title,
            content=content,
            category=category,
            address=address,
            street=street_name,
            caller=caller,
            urgency=ticket_pb2.URGENCY_URGENT if urgent else ticket_pb2.URGENCY_NORMAL,
            tags=tags,
            channel=channels.pick(rng),
            time_limit_working_days=time_limit,
        )
        ticket.received_at.FromDatetime(received)
        ticket.dispatched_at.FromDatetime(_round_ms(received + timedelta(seconds=dispatch_delay)))
        if not repeat and not caller.anonymous:
            history.append(_Caller(caller, topic, company, address, place, street, street_name))
        yield ticket, _Meta(topic.key, topic.category, street.unit_id if street else None)


def _name(rng: random.Random) -> str:
    surname = SURNAMES[_below(rng, len(SURNAMES))]
    roll = rng.random()
    if roll < 0.3:
        return surname + ("先生" if rng.random() < 0.5 else "女士")
    given = GIVEN[_below(rng, len(GIVEN))]
    if roll < 0.7:
        given += GIVEN[_below(rng, len(GIVEN))]
    return surname + given


def _caller(rng: random.Random, enterprise: bool) -> ticket_pb2.Caller:
    if not enterprise and rng.random() < ANONYMOUS_SHARE:
        return ticket_pb2.Caller(anonymous=True)
    phone = PHONE_PREFIXES[_below(rng, len(PHONE_PREFIXES))] + f"{_below(rng, 10**8):08d}"
    return ticket_pb2.Caller(name=_name(rng), phone=phone, enterprise=enterprise)


def _company(rng: random.Random) -> str:
    return (
        "南京"
        + COMPANY_PREFIXES[_below(rng, len(COMPANY_PREFIXES))]
        + COMPANY_TRADES[_below(rng, len(COMPANY_TRADES))]
        + "有限公司"
    )


def _address(rng: random.Random, street: _Street, kind: str) -> tuple[str, str]:
    """An address inside ``street``'s jurisdiction and the road or area it names."""
    road = street.roads[_below(rng, len(street.roads))]
    number = _between(rng, 1, 900)
    building, unit, room = _between(rng, 1, 40), _between(rng, 1, 6), _between(rng, 1, 19) * 100 + _between(rng, 1, 5)
    roll = rng.random()
    if kind == "home":
        if street.areas and roll < 0.3:
            area = street.areas[_below(rng, len(street.areas))]
            prefix = street.name if rng.random() < 0.5 else ""
            return f"{prefix}{area}{building}栋{unit}单元{room}室", area
        compounds = street.compounds or street.areas or [""]
        community = compounds[_below(rng, len(compounds))]
        if roll < 0.65:
            return f"{road}{number}号{community}{building}栋{unit}单元", road
        if roll < 0.85:
            return f"{street.name}{road}{community}{building}栋{room}室", road
        return f"{road}{number}号{building}栋{room}室", road
    if kind == "road":
        if roll < 0.12 and len(street.roads) > 1:
            other = _pick(rng, [r for r in street.roads if r != road])
            return f"{road}与{other}交叉口{_pick(rng, ('东北角', '东南角', '西北角', '西南角'))}", road
        if roll < 0.25 and street.areas:
            area = street.areas[_below(rng, len(street.areas))]
            return f"{street.name}{area}{building}栋附近", area
        return f"{road}{number}号{_pick(rng, ('', '', '附近', '门前', '对面'))}", road
    if kind == "shop":
        return f"{road}{number}号{'' if roll < 0.5 else f'{_between(rng, 1, 4)}楼'}", road
    if kind == "work":
        site = WORK_SITES[_below(rng, len(WORK_SITES))]
        return f"{road}{number}号{site}", road
    # site: somewhere on a road of the tourist area
    return f"{road}{number}号", road


def _values(rng: random.Random, address: str, place: str, street: str, company: str) -> dict[str, Any]:
    amount = _between(rng, 5, 200) * 100
    brand = BRANDS[_below(rng, len(BRANDS))]
    return {
        "addr": address or "其住处",
        "place": place or "附近",
        "street": street,
        "shop": brand + SHOP_TYPES[_below(rng, len(SHOP_TYPES))],
        "store": brand + STORE_TYPES[_below(rng, len(STORE_TYPES))],
        "training": brand + TRAININGS[_below(rng, len(TRAININGS))],
        "company": company,
        "school": SCHOOLS[_below(rng, len(SCHOOLS))],
        "hospital": HOSPITALS[_below(rng, len(HOSPITALS))],
        "scenic": SCENIC[_below(rng, len(SCENIC))],
        "amount": amount,
        "left": _between(rng, 1, max(2, amount // 100)) * 100,
        "small": _between(rng, 5, 300),
        "wage": _between(rng, 20, 600) * 1000,
        "n": _between(rng, 4, 60),
        "days": _between(rng, 2, 31),
        "months": _between(rng, 1, 9),
        "hour": _pick(rng, ("22", "23", "凌晨1", "凌晨2")),
        "hours": _between(rng, 2, 7),
        "workers": _between(rng, 3, 41),
        "bus": _between(rng, 2, 200),
        "age": _between(rng, 70, 96),
        "child": _pick(rng, (3, 6, 7, 12)),
    }


def _text(
    rng: random.Random,
    topic: Topic,
    ticket_type: int,
    values: dict[str, Any],
    urgent: bool,
    enterprise: bool,
    repeat: bool,
) -> tuple[str, str]:
    def pick(options: Sequence[str]) -> str:
        return options[_below(rng, len(options))].format(**values)

    subject = topic.subject
    if ticket_type == ticket_pb2.TICKET_TYPE_CONSULTATION:
        question = pick(topic.consults)
        return f"咨询{subject}相关问题", f"来电人咨询:{question}。"
    if ticket_type == ticket_pb2.TICKET_TYPE_SUGGESTION:
        return f"关于{subject}的建议", f"来电人建议:{pick(topic.suggests)}。"
    if ticket_type == ticket_pb2.TICKET_TYPE_PRAISE:
        who = pick(PRAISE_WHO)
        return f"表扬{who}", f"来电人表扬{who}:此前反映的{subject}问题,工作人员{pick(PRAISE_HOW)},特此表扬。"

    if urgent and topic.urgent:
        options = topic.urgent
    elif enterprise and topic.enterprise:
        options = topic.enterprise
    else:
        options = topic.problems
    title, problem = options[_below(rng, len(options))]
    title, problem = title.format(**values), problem.format(**values)
    if urgent:
        title = "紧急:" + title
    if ticket_type == ticket_pb2.TICKET_TYPE_HELP:
        opener, ask = "来电人求助:", pick(HELP_ASKS)
    else:
        opener, ask = pick(COMPLAINT_OPENERS), pick(COMPLAINT_ASKS)
    if repeat:
        opener, ask = "来电人再次来电反映:", "此前已反映过该问题,至今未解决," + ask
        title = "重复来电:" + title
    if enterprise:
        opener = f"来电人系{values['company']}负责人,{opener}"
    if urgent:
        ask = "请相关部门立即派人到场处置。"
    return title, f"{opener}{problem}。{ask}"


# --------------------------------------------------------------------------------------------
# Malformed input for tests and for exercising the dead-letter path
# --------------------------------------------------------------------------------------------


def bad_messages(settings: Settings | None = None) -> list[tuple[str, bytes]]:
    """Named malformed values; ``BAD_MESSAGE_REASONS[name]`` is the dlq_reason intake gives them."""
    settings = settings or get_settings()
    good: dict[str, Any] = {
        "cityTicketId": "CBAD0000000001",
        "ticketType": "TICKET_TYPE_COMPLAINT",
        "title": "夜间施工噪音扰民",
        "content": "来电人反映:瑞金路88号附近工地夜间23点后仍在施工,噪音很大。要求相关部门尽快处理。",
        "address": "瑞金路88号",
        "receivedAt": "2026-11-26T01:02:03Z",
    }

    def variant(ticket_id: str, **changes: Any) -> bytes:
        obj = {**good, "cityTicketId": ticket_id, **changes}
        return orjson.dumps({k: v for k, v in obj.items() if v is not None})

    filler = "楼上住户每天深夜装修,噪音扰民,多次协商无果。"  # 23 chars, 69 UTF-8 bytes
    oversize_content = filler * (settings.kafka.max_message_bytes // len(filler.encode()) + 200)
    messages = [
        ("not_json", b"this is not json: {cityTicketId=C1}"),
        ("truncated_json", variant("CBAD0000000002")[:60]),
        ("empty_value", b""),
        ("json_array", b"[" + variant("CBAD0000000003") + b"]"),
        ("ticket_type_banana", variant("CBAD0000000004", ticketType="banana")),
        ("content_is_object", variant("CBAD0000000005", content={"text": "噪音扰民"})),
        ("unknown_enum_number", variant("CBAD0000000006", ticketType=42)),
        ("bad_timestamp", variant("CBAD0000000007", receivedAt="2026-11-26 09:02:03")),
        ("bad_ticket_id", variant("市工单 0001")),
        ("time_limit_out_of_range", variant("CBAD0000000008", timeLimitWorkingDays=99)),
        ("missing_city_ticket_id", variant("CBAD0000000009", cityTicketId=None)),
        ("missing_content", variant("CBAD0000000010", content=None)),
        ("missing_received_at", variant("CBAD0000000011", receivedAt=None)),
        ("oversize", variant("CBAD0000000012", content=oversize_content)),
    ]
    assert [n for n, _ in messages] == list(BAD_MESSAGE_REASONS)
    return messages


# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


def _headers(correlation_id: str) -> list[tuple[str, bytes]]:
    return [("content_type", CONTENT_TYPE), ("correlation_id", correlation_id.encode())]


async def publish(
    count: int,
    rate: float,
    seed: int = 0,
    topic: str | None = None,
    settings: Settings | None = None,
    progress: bool = True,
    live: bool = True,
    *,
    bad: bool = False,
    start: datetime | None = None,
) -> dict[str, Any]:
    """Publish ``count`` generated tickets to the city topic at ``rate`` per second (0 = max).

    With ``live`` every ticket's received_at and dispatched_at are the moment it is sent, so
    end-to-end latency can be measured from them. With ``bad`` the malformed samples follow.
    Returns {"published", "seconds", "rate", "first_id", "last_id", "bad", "topic"}."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hotline.kafka import producer as make_producer

    settings = settings or get_settings()
    topic = topic or settings.topics.name("city_tickets")
    kafka = make_producer(settings, linger_ms=5)
    try:
        await kafka.start()
    except BaseException:
        await kafka.stop()
        raise
    first_id = last_id = ""
    published = 0
    bar = Progress(
        TextColumn("[bold]simulate[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task(topic, total=count, speed="")
            pending: list[asyncio.Future[Any]] = []
            started = time.perf_counter()
            shown = started
            for i, ticket in enumerate(generate(count, seed, start)):
                if rate > 0:
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if live:
                    now = datetime.now(UTC)
                    ticket.received_at.FromDatetime(now)
                    ticket.dispatched_at.FromDatetime(now)
                key = ticket.city_ticket_id
                first_id = first_id or key
                last_id = key
                pending.append(
                    await kafka.send(topic, value=to_json(ticket), key=key.encode(), headers=_headers(key))
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    published += len(pending)
                    pending.clear()
                now_pc = time.perf_counter()
                if now_pc - shown >= 0.1 or i + 1 == count:
                    shown = now_pc
                    speed = (i + 1) / max(now_pc - started, 1e-9)
                    bar.update(task, completed=i + 1, speed=f"{speed:,.0f}/s")
            await asyncio.gather(*pending)
            published += len(pending)
            seconds = time.perf_counter() - started
            bad_sent = 0
            if bad:
                futures = [
                    await kafka.send(topic, value=value, key=f"bad-{name}".encode(), headers=_headers(f"bad-{name}"))
                    for name, value in bad_messages(settings)
                ]
                await asyncio.gather(*futures)
                bad_sent = len(futures)
    finally:
        await kafka.stop()
    return {
        "published": published,
        "seconds": round(seconds, 3),
        "rate": round(published / seconds, 1) if seconds > 0 else float(published),
        "first_id": first_id,
        "last_id": last_id,
        "bad": bad_sent,
        "topic": topic,
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` (``args.func(args)`` returns the exit code)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="publish realistic city tickets (市12345 simulator)",
        description="Generate realistic city tickets and publish them to the city topic, or print them.",
    )
    parser.add_argument("--count", type=int, default=100, help="tickets to generate (default 100)")
    parser.add_argument("--rate", type=float, default=50.0, help="tickets per second, 0 = as fast as possible")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed + start = same tickets)")
    parser.add_argument("--topic", default=None, help="topic (default: settings topics.city_tickets)")
    parser.add_argument("--bad", action="store_true", help="also publish (or print) the malformed samples")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print JSON lines, do not publish")
    parser.add_argument("--with-key", action="store_true", help="with --print: 'id<TAB>json' lines for kcat -K'\\t'")
    parser.add_argument("--start", type=datetime.fromisoformat, default=None,
                        help="received_at of the run, ISO 8601 (default: the run ends before now); ids embed it")
    parser.add_argument("--no-live", dest="live", action="store_false",
                        help="keep the generated received_at/dispatched_at instead of the publish time")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--lifecycle", action="store_true",
                        help="also play the handling units, the office and the city's callback centre until every "
                             "published ticket is closed (hotline_dev/lifecycle_sim.py)")
    parser.add_argument("--step-delay", type=float, default=0.5,
                        help="with --lifecycle: mean seconds a person takes for each step (exponential)")
    parser.add_argument("--shares", default="",
                        help="with --lifecycle: path shares, e.g. straight=0.6,review_failed=0.2,parked=0.2 "
                             "(default: the district's rough proportions)")
    parser.add_argument("--timeout", type=float, default=1800, help="with --lifecycle: give up after this many s")
    parser.set_defaults(func=_cli)
    return parser


def _cli(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console

    # a developer's tool: its tokens are development tokens (issue #19); an explicit HOTLINE_ENV wins
    os.environ.setdefault("HOTLINE_ENV", "development")
    get_settings.cache_clear()

    console = Console(stderr=True)
    if args.count < 0:
        console.print("[red]--count must be >= 0[/]")
        return 2
    if args.print_only:
        return _print(args)
    from aiokafka.errors import KafkaError

    if args.lifecycle:
        try:
            return asyncio.run(_play(args, console))
        except (KafkaError, OSError, ValueError) as exc:
            console.print(f"[red]cannot play lifecycles: {exc!r}[/]")
            return 1
    try:
        result = asyncio.run(
            publish(args.count, args.rate, args.seed, args.topic, progress=not args.quiet, live=args.live,
                    bad=args.bad, start=args.start)
        )
    except (KafkaError, OSError) as exc:
        console.print(f"[red]cannot publish to {get_settings().kafka.bootstrap_servers}: {exc!r}[/]")
        return 1
    console.print(
        f"published {result['published']} tickets to {result['topic']} in {result['seconds']:.2f}s "
        f"({result['rate']:,.0f}/s), ids {result['first_id']} .. {result['last_id']}"
        + (f", plus {result['bad']} malformed" if result["bad"] else "")
    )
    return 0


async def _play(args: argparse.Namespace, console: Any) -> int:
    """Publish tickets and play their lifecycles to closure (units, office, callback centre)."""
    from collections import Counter

    from hotline_dev.lifecycle_sim import DEFAULT_SHARES, Player, choose_paths
    from hotline_dev.lifecycle_sim import Path as LifecyclePath

    shares = DEFAULT_SHARES
    if args.shares:
        shares = {LifecyclePath(name.strip()): float(weight) for name, _, weight in
                  (part.partition("=") for part in args.shares.split(",") if part.strip())}
    start = args.start or datetime.now(UTC)
    ids = [t.city_ticket_id for t in generate(args.count, args.seed, start)]
    paths = choose_paths(ids, shares, args.seed)
    player = Player(get_settings(), paths, delay=args.step_delay, seed=args.seed, from_beginning=False)
    playing = asyncio.create_task(player.run(timeout=args.timeout))
    await asyncio.wait_for(player.ready.wait(), 60)
    result = await publish(args.count, args.rate, args.seed, args.topic, progress=not args.quiet, live=args.live,
                           start=start)
    console.print(f"published {result['published']} tickets; playing their lifecycles "
                  f"(paths: {dict(sorted(Counter(paths.values()).items()))})")
    stats = await playing
    closed = sorted(stats.closed_after.values())
    console.print(
        f"closed {len(stats.closed)}/{len(paths)} tickets with {sum(stats.commands.values())} commands "
        f"({dict(stats.commands)}), {stats.evaluations} evaluations, {stats.routing_decisions} return decisions, "
        f"{stats.retries} retries, {len(stats.refused)} refused"
        + (f"; time to closure p50 {closed[len(closed) // 2]:.1f} s, p95 {closed[int(len(closed) * 0.95)]:.1f} s"
           if closed else ""))
    return 0 if not stats.refused and not stats.errors else 1


def _print(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    try:
        for ticket in generate(args.count, args.seed, args.start):
            prefix = ticket.city_ticket_id.encode() + b"\t" if args.with_key else b""
            out.write(prefix + to_json(ticket) + b"\n")
        if args.bad:
            for name, value in bad_messages():
                prefix = f"bad-{name}".encode() + b"\t" if args.with_key else b""
                out.write(prefix + value + b"\n")
        out.flush()
    except BrokenPipeError:  # e.g. piped into head
        return 0
    return 0
