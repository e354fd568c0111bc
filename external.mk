include $(sort $(wildcard $(BR2_EXTERNAL_NUTAPP_PATH)/package/*/*.mk))
